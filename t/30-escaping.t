# Hostile payloads arrive escaped exactly as specified: JSON string escapes,
# < > & ' as \u003c \u003e \u0026 \u0027, U+2028/2029 as \u2028/\u2029,
# every byte of invalid UTF-8 as \ufffd; nothing can end the script block.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Encode ();
use JSON::PP ();

my @cases = (
    [ 'script end and markup', '</script><img src=x onerror=alert(1)>',
      '\u003c/script\u003e\u003cimg src=x onerror=alert(1)\u003e' ],
    [ 'upper-case script end', '</SCRIPT >', '\u003c/SCRIPT \u003e' ],
    [ 'HTML comment open', '<!--', '\u003c!--' ],
    [ 'HTML comment close', '-->', '--\u003e' ],
    [ 'comment and script', '<!--<script>', '\u003c!--\u003cscript\u003e' ],
    [ 'CDATA end', ']]>', ']]\u003e' ],
    [ 'entity', '&amp;&#60;', '\u0026amp;\u0026#60;' ],
    [ 'double quotes', '"quoted"', '\"quoted\"' ],
    [ 'single quotes', "it's", 'it\u0027s' ],
    [ 'breaking out of the call', '","x");alert(1);//', '\",\"x\");alert(1);//' ],
    [ 'backslashes', 'a\\b\\\\c\\', 'a\\\\b\\\\\\\\c\\\\' ],
    [ 'a backslash before a quote', '\\"', '\\\\\"' ],
    [ 'newline, return, tab', "a\nb\rc\td", 'a\nb\rc\td' ],
    [ 'NUL', "a\0b", 'a\u0000b' ],
    [ 'other controls', "\x01\x08\x0c\x1b\x1f\x7f", '\u0001\u0008\u000c\u001b\u001f\u007f' ],
    [ 'U+2028 and U+2029', "a\xe2\x80\xa8b\xe2\x80\xa9c", 'a\u2028b\u2029c' ],
    [ 'invisible: U+200E, U+202E, U+2060, U+FEFF (kept), U+FFF9',
      "\xe2\x80\x8e\xe2\x80\xae\xe2\x81\xa0\xef\xbb\xbf\xef\xbf\xb9",
      "\\u200e\\u202e\\u2060\xef\xbb\xbf\\ufff9" ],
    [ 'valid UTF-8 passes', "\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", "\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80" ],
    [ 'invalid byte', "a\xffb", 'a\ufffdb' ],
    [ 'overlong slash', "\xc0\xaf", '\ufffd\ufffd' ],
    [ 'surrogate', "\xed\xa0\x80", '\ufffd\ufffd\ufffd' ],
    [ 'past U+10FFFF', "\xf4\x90\x80\x80", '\ufffd\ufffd\ufffd\ufffd' ],
    [ 'truncated sequence at the end', "ok\xe2\x82", 'ok\ufffd\ufffd' ],
    [ 'lone continuation bytes', "\x80\xbf", '\ufffd\ufffd' ],
);

plan tests => 4 * @cases + 6, need_module('comet');

my $chan = new_channel('escape');
my $s = subscribe("/comet/$chan");
$s->prelude;
wait_subscribers($chan, 1);

my $json = JSON::PP->new->utf8->allow_nonref;

# The message as UTF-8, each byte of an invalid sequence replaced by U+FFFD.
sub utf8_fixed {
    my ($bytes) = @_;
    my ($out, $i) = ('', 0);
    while ($i < length $bytes) {
        my ($n) = ord(substr $bytes, $i, 1) < 0x80 ? (1) : Comet::Test::utf8_seq($bytes, $i);
        $out .= $n ? substr($bytes, $i, $n) : "\xef\xbf\xbd";
        $i += $n || 1;
    }
    return $out;
}
for my $c (@cases) {
    my ($name, $data, $wire) = @$c;
    my $id = publish($chan, $data)->{json}{id};
    my $f = $s->next_frame(5);
    is $f && $f->{raw}, "<script>p($id,\"$wire\",\"$chan\");</script>\n", "$name: exact frame";
    is escape_js($data), $wire, "$name: the model agrees";
    my $raw = $f ? $f->{raw} : '';
    ok $raw !~ m{</script>.} && $raw !~ /<!--/ && $raw !~ /\xe2\x80[\xa8\xa9]/,
        "$name: no </script>, <!-- or raw U+2028/9 inside";
    # what the browser's JavaScript gets back
    my $decoded = eval { Encode::encode('UTF-8', $json->decode(qq("$f->{data}"))) } // '(undecodable)';
    is $decoded, utf8_fixed($data), "$name: decodes to the message (invalid bytes as U+FFFD)";
}

# Many random messages: the frames match the model byte for byte.
{
    srand 20260101;
    my (@sent, @ids);
    my $conn = Comet::Test::Conn->new;
    my @alphabet = (map({ chr } 0 .. 255), "\xe2\x80\xa8", "\xc3\xa9", "</script>", "<!--", '\\', '"');
    for my $i (1 .. 200) {
        my $d = join '', map { $alphabet[rand @alphabet] } 1 .. int(rand 60);
        push @sent, $d;
        push @ids, publish($chan, $d, conn => $conn)->{json}{id};
    }
    $conn->close;
    my @m = $s->messages(200, 10);
    my @bad = grep { !$m[$_] || $m[$_]{raw} ne frame_bytes($ids[$_], $sent[$_], $chan) } 0 .. 199;
    is scalar(@bad), 0, '200 random messages: every frame exactly as modelled'
        or diag "first mismatch: sent " . unpack('H*', $sent[$bad[0]]) . "\ngot: "
                . ($m[$bad[0]] ? $m[$bad[0]]{raw} : 'nothing');
}

# The largest message the default location accepts, all of it to escape.
{
    my $big = '<' x (64 * 1024);
    my $res = publish($chan, $big);
    is $res->{status}, 201, '64 KiB of "<": 201';
    my $f = $s->next_frame(10);
    is length($f ? $f->{data} : ''), 6 * 64 * 1024, '... arrives as 64 Ki times \u003c';
    ok $f && $f->{data} eq '\u003c' x (64 * 1024), '... exactly';
}

# Escaped channel names can't be hostile: they are validated.
is $s->pending, '', 'nothing left over';
$s->close;
ok wait_subscribers($chan, 0), 'the stream is gone once closed';
delete_channel($chan);
