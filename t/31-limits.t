# CometMaxMessageSize: larger bodies get 413, however they are sent.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 15, need_module('comet');

my $chan = new_channel('limits');
my $small = '/comet-small-publish';    # CometMaxMessageSize 1K

my $mark = log_mark();
is publish($chan, 'x' x 1024, location => $small)->{status}, 201, '1K limit: 1024 bytes: 201';
my $res = publish($chan, 'x' x 1025, location => $small);
is $res->{status}, 413, '... 1025 bytes: 413';
ok wait_log($mark, qr/\[comet:info\].*CMT00120: \Q$small\E\/\Q$chan\E: message larger than CometMaxMessageSize \(1024 bytes\)/),
    '... logged (info): message larger than CometMaxMessageSize (1024 bytes)';
is publish($chan, 'x' x 1024, location => $small, chunked => 1)->{status}, 201,
    '... 1024 bytes, chunked: 201';
is publish($chan, 'x' x 1025, location => $small, chunked => 1)->{status}, 413,
    '... 1025 bytes, chunked (no Content-Length): 413';
is publish($chan, 'x' x 100_000, location => $small, chunked => 1)->{status}, 413,
    '... 100000 bytes, chunked: 413';

# A huge Content-Length is refused before any body is read.
{
    my $conn = Comet::Test::Conn->new;
    $conn->send_bytes("POST $small/$chan HTTP/1.1\r\nHost: " . hostport()
                      . "\r\nContent-Length: 10000000000\r\n\r\n");
    my $r = $conn->read_response(timeout => 5);
    is $r->{status}, 413, '... Content-Length: 10000000000 and no body: 413 at once';
}

# nothing of that was stored
my $info = channel_info($chan);
is $info->{messages}, 2, 'only the two accepted messages are stored';
is $info->{bytes}, 2048, '... 2048 bytes';

# the default limit, 64K
is publish($chan, 'y' x 65536)->{status}, 201, 'default limit: 65536 bytes: 201';
is publish($chan, 'y' x 65537)->{status}, 413, '... 65537 bytes: 413';

# a large limit, and a message larger than CometClientBuffer (1M) and than
# CometStreamLimit (1M): still delivered whole, then the stream is renewed
{
    my $s = subscribe("/comet/$chan");
    $s->prelude;
    wait_subscribers($chan, 1);
    my $big = join '', map { chr(65 + $_ % 26) } 1 .. 1_500_000;
    $res = publish($chan, $big, location => '/comet-big-publish');
    is $res->{status}, 201, 'CometMaxMessageSize 2M: 1.5 MB: 201';
    my $f = $s->next_frame(10);
    ok $f && $f->{type} eq 'p' && $f->{data} eq $big, '... delivered whole to a stream';
    $f = $s->next_frame(5);
    is $f && $f->{raw}, qq(<script>e("reconnect");</script>\n</body></html>\n),
        '... which then ends, past CometStreamLimit: e("reconnect")';
    is publish($chan, 'z' x (2 * 1024 * 1024 + 1), location => '/comet-big-publish')->{status},
        413, '... 2M + 1 bytes: 413';
    $s->close;
}

delete_channel($chan);
