# The publisher's API: POST, GET, DELETE on /comet-publish/<channel>, GET on
# /comet-publish/, and what other methods get.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time);

plan tests => 61, need_module('comet');

my $chan = new_channel('api');
my $json_headers = sub {
    my ($res, $what) = @_;
    is $res->{headers}{'content-type'}, 'application/json', "$what: Content-Type: application/json";
    is $res->{headers}{'cache-control'},
        'no-store, no-cache, no-transform, must-revalidate, max-age=0', "$what: Cache-Control";
    is $res->{headers}{'content-length'}, length $res->{body}, "$what: Content-Length";
};

# --- GET on a channel that does not exist --------------------------------
my $res = http(GET => "/comet-publish/$chan");
is $res->{status}, 404, 'GET unknown channel: 404';

# --- POST -----------------------------------------------------------------
my $t0 = time;
$res = publish($chan, 'first');
is $res->{status}, 201, 'POST: 201 Created';
$json_headers->($res, 'POST');
my $id1 = $res->{json}{id};
like $res->{body}, qr/\A\{"channel": "\Q$chan\E", "id": (\d+), "subscribers": 0\}\n\z/,
    'POST: {"channel": ..., "id": N, "subscribers": 0}';
like $id1, qr/^\d{16}$/, "id $id1: an integer";
# microseconds since the epoch, or close to it
cmp_ok abs($id1 / 1e6 - $t0), '<', 3600, '... near the clock in microseconds';

# strictly increasing, even in a burst
my @ids = ($id1);
my $conn = Comet::Test::Conn->new;
for my $i (1 .. 50) {
    my $r = publish($chan, "burst $i", conn => $conn);
    push @ids, $r->{json}{id} if $r->{status} == 201;
}
is scalar(@ids), 51, '50 more publications on one keep-alive connection: all 201';
my @bad = grep { $ids[$_] <= $ids[$_ - 1] } 1 .. $#ids;
is "@bad", '', '... ids strictly increasing';
$conn->close;

# a body sent in chunks, with no Content-Length
$res = publish($chan, 'x' x 10000, chunked => 1);
is $res->{status}, 201, 'POST with a chunked body: 201';
cmp_ok $res->{json}{id}, '>', $ids[-1], '... a larger id';
push @ids, $res->{json}{id};

# PUT publishes as well
$res = http(PUT => "/comet-publish/$chan", body => 'put');
is $res->{status}, 201, 'PUT: 201 (same as POST)';
push @ids, $res->{json}{id};

# --- GET on a channel -----------------------------------------------------
$res = http(GET => "/comet-publish/$chan");
is $res->{status}, 200, 'GET channel: 200';
$json_headers->($res, 'GET channel');
my $info = $res->{json};
is $info->{channel}, $chan, '... channel';
is $info->{messages}, 53, '... messages: 53';
is $info->{bytes}, length('first') + length(join '', map { "burst $_" } 1 .. 50) + 10000 + 3,
    '... bytes: the sum of the bodies';
is $info->{subscribers}, 0, '... subscribers: 0';
is $info->{last_id}, $ids[-1], '... last_id: the last id given';
is $info->{first_id}, $id1, '... first_id: the first id';
cmp_ok abs($info->{created} - $t0), '<', 5, '... created: seconds since the epoch';
cmp_ok $info->{last_publish}, '>=', $info->{created}, '... last_publish';
like $res->{body}, qr/\A\{"channel": "[^"]+", "messages": \d+, "bytes": \d+, "subscribers": \d+, "last_id": \d+, "first_id": \d+, "created": \d+, "last_publish": \d+\}\n\z/,
    '... the documented fields, in order';

# HEAD
$res = http(HEAD => "/comet-publish/$chan");
is $res->{status}, 200, 'HEAD channel: 200';
is $res->{body}, '', '... no body';

# --- GET /comet-publish/ --------------------------------------------------
$res = http(GET => '/comet-publish/');
is $res->{status}, 200, 'GET /comet-publish/: 200';
$json_headers->($res, 'GET /comet-publish/');
my $st = $res->{json};
for my $k (qw(version store channels channels_max memory_used memory_max processes
              processes_max published repairs)) {
    ok exists $st->{$k}, "... $k";
}
cmp_ok $st->{channels}, '>=', 1, '... channels counts ours';
cmp_ok $st->{published}, '>=', 53, '... published counts ours';
is_deeply [sort keys %{ $st->{this_process} }],
    [sort qw(pid subscribers held channels delivered dropped)], '... this_process';

# --- DELETE ---------------------------------------------------------------
$res = delete_channel($chan);
is $res->{status}, 200, 'DELETE: 200';
$json_headers->($res, 'DELETE');
is $res->{body}, qq({"channel": "$chan", "deleted": true, "subscribers": 0}\n),
    'DELETE: {"channel": ..., "deleted": true, "subscribers": 0}';
is http(GET => "/comet-publish/$chan")->{status}, 404, 'GET after DELETE: 404';
is delete_channel($chan)->{status}, 404, 'DELETE again: 404';

# a deleted channel can be published to again; ids keep growing
$res = publish($chan, 'again');
is $res->{status}, 201, 'POST after DELETE: 201';
is http(GET => "/comet-publish/$chan")->{json}{messages}, 1, '... a new channel with 1 message';
delete_channel($chan);

# --- methods --------------------------------------------------------------
sub allow_set { my $h = shift // ''; join ',', sort grep { length } split /\s*,\s*/, $h }
$res = http(PATCH => "/comet-publish/$chan", body => 'x');
is $res->{status}, 405, 'PATCH on a channel: 405';
like allow_set($res->{headers}{allow}), qr/\bDELETE\b.*\bGET\b.*\bPOST\b/,
    '... Allow: lists GET, POST and DELETE' or diag "Allow: $res->{headers}{allow}";
$res = http(OPTIONS => "/comet-publish/$chan");
is $res->{status}, 405, 'OPTIONS on a channel: 405';
$res = http(POST => '/comet-publish/', body => 'x');
is $res->{status}, 405, 'POST /comet-publish/: 405';
like allow_set($res->{headers}{allow}), qr/\bGET\b/, '... Allow: GET'
    or diag "Allow: $res->{headers}{allow}";
$res = http(POST => "/comet/$chan", body => 'x');
is $res->{status}, 405, 'POST on a stream: 405';
like allow_set($res->{headers}{allow}), qr/\bGET\b/, '... Allow: GET'
    or diag "Allow: $res->{headers}{allow}";
