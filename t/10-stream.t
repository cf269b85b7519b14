# A stream on the wire: status line, headers, the prelude and the frames,
# byte for byte.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 46, need_module('comet');

# The prelude, exactly: the head, then dots in runs of 64 until the page
# holds at least 1024 + 16 bytes, then the end of the comment.
sub expected_prelude {
    my $head = expected_prelude_head(@_);
    my $dots = 0;
    $dots += 64 while length($head) + $dots < 1024 + 16;
    return $head . ('.' x $dots) . " -->\n";
}

my $chan = new_channel('wire');

# Where the channel stands now: the cursor a stream opened now announces.
sub here {
    my $info = eval { channel_info($chan) };
    return [[$chan, $info && $info->{last_id} ? $info->{last_id} : 0]];
}

# --- headers --------------------------------------------------------------
{
    my $at = here();
    my $s = subscribe("/comet/$chan");
    is $s->{status}, 200, 'GET /comet/<channel>: 200';
    is $s->{proto}, 'HTTP/1.1', '... HTTP/1.1';
    my $h = $s->{headers};
    is $h->{'content-type'}, 'text/html; charset=utf-8', 'Content-Type: text/html; charset=utf-8';
    is $h->{'cache-control'}, 'no-store, no-cache, no-transform, must-revalidate, max-age=0',
        'Cache-Control';
    is $h->{'x-accel-buffering'}, 'no', 'X-Accel-Buffering: no';
    is $h->{'x-content-type-options'}, 'nosniff', 'X-Content-Type-Options: nosniff';
    is $h->{connection}, 'close', 'Connection: close';
    ok !exists $h->{'content-length'}, 'no Content-Length';
    ok !exists $h->{'transfer-encoding'}, 'no Transfer-Encoding (not chunked)';
    ok !exists $h->{'content-encoding'}, 'no Content-Encoding';

    my $prelude = $s->prelude;
    is $prelude, expected_prelude(DEFAULT_CB, 25000, $at),
        'prelude: exact bytes, default callback, 25 s heartbeat, where the channel stands';
    cmp_ok length($prelude), '>=', 1024, '... at least 1 KiB (' . length($prelude) . ' bytes)';
    ok wait_subscribers($chan, 1), 'the stream is registered with the channel';

    # one message, exactly
    my $res = publish($chan, 'hello world');
    is $res->{status}, 201, 'publish: 201';
    my $id = $res->{json}{id};
    my $f = $s->next_frame(5);
    is $f && $f->{raw}, "<script>p($id,\"hello world\",\"$chan\");</script>\n",
        'message frame: exact bytes, with the id the publisher got';
    is $s->pending, '', 'nothing else on the wire';

    # an empty message is a message
    $res = publish($chan, '');
    is $res->{status}, 201, 'empty message: 201';
    $f = $s->next_frame(5);
    is $f && $f->{raw}, "<script>p($res->{json}{id},\"\",\"$chan\");</script>\n", '... framed as ""';

    $s->close;
    ok wait_subscribers($chan, 0), 'the client left: the channel has no subscriber any more';
}

# --- query parameters -----------------------------------------------------
{
    my $s = subscribe("/comet/$chan?cb=window.top.My_app.cb.c1");
    is $s->{status}, 200, 'cb=window.top.My_app.cb.c1: 200';
    is $s->prelude, expected_prelude('window.top.My_app.cb.c1', 25000, here()),
        '... its prelude calls it';
    $s->close;

    $s = subscribe("/comet-small/$chan?cb=\$x._y");
    is $s->{status}, 200, 'cb=$x._y (CometHeartbeat 1): 200';
    is $s->prelude, expected_prelude('$x._y', 1000, here()), '... heartbeat announced in ms: 1000';
    $s->close;

    $s = subscribe("/comet/$chan?since=0&cb=a&x=1");
    is $s->{status}, 200, 'unknown parameters are ignored';
    is $s->prelude, expected_prelude('a', 25000, [[$chan, 0]]), '... prelude, cursor from since';
    $s->close;

    $s = subscribe("/comet/$chan?transport=iframe");
    is $s->{status}, 200, 'transport=iframe: 200';
    is $s->prelude, expected_prelude(DEFAULT_CB, 25000, here()), '... same prelude';
    $s->close;
}

# --- HTTP/1.0, HEAD -------------------------------------------------------
{
    my $s = subscribe("/comet/$chan", version => '1.0');
    is $s->{status}, 200, 'HTTP/1.0 request: 200';
    ok !exists $s->{headers}{'transfer-encoding'}, '... not chunked';
    ok !exists $s->{headers}{'content-length'}, '... no Content-Length';
    is $s->prelude, expected_prelude(DEFAULT_CB, 25000, here()), '... same prelude';
    ok wait_subscribers($chan, 1), '... registered';
    my $id = publish($chan, 'one-oh')->{json}{id};
    my $f = $s->next_frame(5);
    is $f && $f->{raw}, "<script>p($id,\"one-oh\",\"$chan\");</script>\n", '... message frame';
    $s->close;
    wait_subscribers($chan, 0);

    my $res = http(HEAD => "/comet/$chan");
    is $res->{status}, 200, 'HEAD: 200';
    is $res->{headers}{'content-type'}, 'text/html; charset=utf-8', '... Content-Type';
    $res->{conn}->read_until(sub { 0 }, 1);
    is $res->{conn}{buf}, '', '... no body';
}

# --- several channels in one stream --------------------------------------
{
    my $ca = new_channel('multi-a');
    my $cb = new_channel('multi-b');
    my $s = subscribe("/comet/$ca,$cb");
    is $s->{status}, 200, 'GET /comet/a,b: 200';
    $s->prelude;
    ok wait_subscribers($ca, 1) && wait_subscribers($cb, 1), '... subscribed to both';
    my $ia = publish($ca, 'to a')->{json}{id};
    my $ib = publish($cb, 'to b')->{json}{id};
    # (the order of messages of different channels is not specified)
    my @m = sort { $a->{chan} cmp $b->{chan} } grep { $_ } $s->messages(2, 5);
    is $m[0] && $m[0]{raw}, "<script>p($ia,\"to a\",\"$ca\");</script>\n", '... message of a, naming a';
    is $m[1] && $m[1]{raw}, "<script>p($ib,\"to b\",\"$cb\");</script>\n", '... message of b, naming b';
    $s->close;
}

# --- a filter that would compress or buffer the stream -------------------
# As Debian's deflate.conf: AddOutputFilterByType DEFLATE text/html.
{
    my $s = subscribe("/comet-deflate/$chan", headers => ['Accept-Encoding' => 'gzip, deflate']);
    is $s->{status}, 200, 'location with DEFLATE for text/html: 200';
    ok !exists $s->{headers}{'content-encoding'}, '... not compressed';
    ok !exists $s->{headers}{'transfer-encoding'}, '... not chunked';
    is $s->prelude, expected_prelude(DEFAULT_CB, 25000, here()), '... prelude in clear';
    ok wait_subscribers($chan, 1), '... registered';
    my $id = publish($chan, 'through deflate')->{json}{id};
    my $f = $s->next_frame(3);
    is $f && $f->{raw}, "<script>p($id,\"through deflate\",\"$chan\");</script>\n",
        '... a message arrives at once';
    $s->close;
}

delete_channel($chan);
