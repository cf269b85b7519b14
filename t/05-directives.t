# Every directive the module declares is documented: in conf/comet.conf (the
# annotated reference) and in README.md's table, as the code spells it.
use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/..";
sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return <$fh>;
}

my $code = slurp("$top/httpd/comet_config.c");
my @directives = $code =~ /(?:AP_INIT_[A-Z0-9]+|NUM)\("(Comet\w+)"/g;
cmp_ok scalar(@directives), '>=', 20, scalar(@directives) . ' directives in httpd/comet_config.c';

my $conf = slurp("$top/conf/comet.conf");
my $readme = slurp("$top/README.md");
for my $d (@directives) {
    like $conf, qr/^\s*#?\s*\Q$d\E\b/m, "$d in conf/comet.conf";
    like $readme, qr/`\Q$d\E`/, "$d in README.md";
}
done_testing;
