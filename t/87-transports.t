# The channel transports besides the iframe: Server-Sent Events (one and
# several channels, Last-Event-ID, composite ids), ndjson streaming and
# long-polling; chosen by ?transport= or Accept, restricted by
# CometTransports; several channels in one stream, in publication order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 50, need_module('comet');

my $NOCACHE = 'no-store, no-cache, no-transform, must-revalidate, max-age=0';

sub last_id {
    my $info = channel_info($_[0]);
    return $info && $info->{last_id} ? $info->{last_id} : 0;
}
sub sse_prelude {
    my ($hb, $cursors) = @_;
    my $pad = ':';
    $pad .= ' ' x 64 while length $pad < 2048;
    my $c = join ',', map { "\"$_->[0]\":$_->[1]" } @$cursors;
    return "$pad\nretry: 1000\nevent: comet.open\ndata: {\"heartbeat\": $hb, \"cursors\": {$c}}\n\n";
}
sub open_line {
    my ($hb, $cursors) = @_;
    my $c = join ',', map { "\"$_->[0]\":$_->[1]" } @$cursors;
    return "{\"open\": {\"heartbeat\": $hb, \"cursors\": {$c}}}\n";
}
sub stream_prelude {
    return (' ' x 2048) . "\n" . open_line(@_);
}
sub json_msg {
    my ($id, $chan, $data) = @_;
    return "{\"id\": $id, \"channel\": \"$chan\", \"data\": \"" . escape_js($data) . "\"}\n";
}

# --- SSE, one channel -------------------------------------------------------
my $a = new_channel('sse');
{
    publish($a, 'before');
    my $at = last_id($a);
    my $s = subscribe("/comet/$a?transport=sse");
    my $h = $s->{headers};
    is $s->{status}, 200, 'transport=sse: 200';
    is $h->{'content-type'}, 'text/event-stream; charset=utf-8', '... text/event-stream';
    is $h->{'cache-control'}, $NOCACHE, '... not cached';
    is $h->{'x-accel-buffering'}, 'no', '... X-Accel-Buffering: no';
    ok !exists $h->{'content-length'} && !exists $h->{'transfer-encoding'}, '... no length, not chunked';
    is $s->upto("\n\n", 5), sse_prelude(25000, [[$a, $at]]),
        '... prelude: 2K of padding comment, retry, the open event with the cursor';
    ok wait_subscribers($a, 1), '... registered';
    my $id = publish($a, "one\ntwo\r\nthree\rfour")->{json}{id};
    is $s->upto("\n\n", 5), "id: $id\ndata: one\ndata: two\ndata: three\ndata: four\n\n",
        'a message: its id, one data line per line (LF, CRLF, CR)';
    $id = publish($a, '')->{json}{id};
    is $s->upto("\n\n", 5), "id: $id\ndata: \n\n", 'an empty message: one empty data line';
    $id = publish($a, "end\n")->{json}{id};
    is $s->upto("\n\n", 5), "id: $id\ndata: end\ndata: \n\n", 'a trailing newline: an empty last line';
    $id = publish($a, "event: x\nid: 9\n\nretry: 1")->{json}{id};
    is $s->upto("\n\n", 5),
        "id: $id\ndata: event: x\ndata: id: 9\ndata: \ndata: retry: 1\n\n",
        'a message cannot start fields of its own';
    $s->close;

    $s = subscribe("/comet-fast/$a?transport=sse");
    $s->upto("\n\n", 5);
    my $t0 = time;
    is $s->upto("\n\n", 5), "event: comet.heartbeat\ndata:\n\n", sprintf 'heartbeat event after %.1f s', time - $t0;
    $s->close;
}

# --- SSE resume: Last-Event-ID and since --------------------------------------
{
    my @ids = map { publish($a, "r$_")->{json}{id} } 1 .. 3;
    my $s = subscribe("/comet/$a", headers => [Accept => 'text/event-stream', 'Last-Event-ID' => $ids[0]]);
    is $s->upto("\n\n", 5), sse_prelude(25000, [[$a, $ids[0]]]), 'Last-Event-ID: the open event says where';
    is $s->upto("\n\n", 5) . $s->upto("\n\n", 5), "id: $ids[1]\ndata: r2\n\nid: $ids[2]\ndata: r3\n\n",
        '... and what came after it follows';
    $s->close;
    $s = subscribe("/comet/$a?transport=sse&since=$ids[1]", headers => ['Last-Event-ID' => $ids[0]]);
    $s->upto("\n\n", 5);
    is $s->upto("\n\n", 5), "id: $ids[2]\ndata: r3\n\n", 'since wins over Last-Event-ID';
    $s->close;
    is subscribe("/comet/$a?transport=sse", headers => ['Last-Event-ID' => 'x1'])->{status}, 400,
        'a malformed Last-Event-ID: 400';
}

# --- SSE, several channels: event names, composite ids -----------------------
my $b = new_channel('sseb');
{
    my ($la, $lb) = (last_id($a), last_id($b));
    my $s = subscribe("/comet/$a,$b?transport=sse");
    is $s->upto("\n\n", 5), sse_prelude(25000, [[$a, $la], [$b, $lb]]), 'two channels: both cursors';
    wait_subscribers($b, 1);
    my $ia = publish($a, 'to a')->{json}{id};
    my $ib = publish($b, "to\nb")->{json}{id};
    is $s->upto("\n\n", 5), "id: $a:$ia,$b:$lb\nevent: $a\ndata: to a\n\n",
        'event: <channel>, id: every cursor';
    is $s->upto("\n\n", 5), "id: $a:$ia,$b:$ib\nevent: $b\ndata: to\ndata: b\n\n", '... the other channel';
    $s->close;

    my $ia2 = publish($a, 'a2')->{json}{id};
    my $ib2 = publish($b, 'b2')->{json}{id};
    $s = subscribe("/comet/$a,$b?transport=sse", headers => ['Last-Event-ID' => "$a:$ia,$b:$ib"]);
    is $s->upto("\n\n", 5), sse_prelude(25000, [[$a, $ia], [$b, $ib]]), 'composite Last-Event-ID: both cursors';
    is $s->upto("\n\n", 5) . $s->upto("\n\n", 5),
        "id: $a:$ia2,$b:$ib\nevent: $a\ndata: a2\n\nid: $a:$ia2,$b:$ib2\nevent: $b\ndata: b2\n\n",
        '... exactly what came after';
    $s->close;
    $s = subscribe("/comet/$a,$b?transport=sse&since=$a:$ia2,$b:$ib");
    $s->upto("\n\n", 5);
    is $s->upto("\n\n", 5), "id: $a:$ia2,$b:$ib2\nevent: $b\ndata: b2\n\n", 'since=a:<id>,b:<id> likewise';
    $s->close;
    $s = subscribe("/comet/$a,$b?transport=sse&since=$b:$ib");
    is $s->upto("\n\n", 5), sse_prelude(25000, [[$a, $ia2], [$b, $ib]]),
        'a channel not named in since starts where it stands';
    $s->close;
}

# --- ndjson stream ----------------------------------------------------------
{
    my ($la, $lb) = (last_id($a), last_id($b));
    my $s = subscribe("/comet/$a,$b?transport=stream");
    is $s->{headers}{'content-type'}, 'application/x-ndjson; charset=utf-8', 'transport=stream: ndjson';
    is $s->upto("}}\n", 5), stream_prelude(25000, [[$a, $la], [$b, $lb]]),
        '... 2K of spaces, a newline, the open line with the cursors';
    wait_subscribers($b, 1);
    my $ia = publish($a, "x\"</script>\n\x{0}")->{json}{id};
    my $ib = publish($b, 'y')->{json}{id};
    is $s->upto("\n", 5) . $s->upto("\n", 5),
        json_msg($ia, $a, "x\"</script>\n\x{0}") . json_msg($ib, $b, 'y'), '... one JSON line per message';
    $s->close;
    $s = subscribe("/comet-fast/$a?transport=stream");
    $s->upto("}}\n", 5);
    is $s->upto("\n", 5), "\n", '... heartbeats: empty lines';
    $s->close;
}

# --- long-polling -------------------------------------------------------------
{
    my $i1 = last_id($a);
    my $i2 = publish($a, 'lp1')->{json}{id};
    my $i3 = publish($a, 'lp2')->{json}{id};
    my $s = subscribe("/comet/$a?transport=longpoll&since=$i1");
    is $s->{headers}{'content-type'}, 'application/x-ndjson; charset=utf-8', 'transport=longpoll: ndjson';
    my ($body, $eof) = $s->rest(5);
    is $body, open_line(25000, [[$a, $i1]]) . json_msg($i2, $a, 'lp1') . json_msg($i3, $a, 'lp2')
              . "{\"end\": \"reconnect\"}\n", '... what is there, at once, then the end line';
    ok $eof, '... and the response ends';

    $s = subscribe("/comet-fast/$a?transport=longpoll");
    my $t0 = time;
    ($body, $eof) = $s->rest(5);
    my $dt = time - $t0;
    is $body, open_line(1000, [[$a, $i3]]) . "{\"end\": \"timeout\"}\n", 'nothing to say: the timeout line';
    ok $eof && $dt > 0.7 && $dt < 3, sprintf '... after the heartbeat interval (%.1f s of 1)', $dt;

    $s = subscribe("/comet/$a?transport=longpoll");
    $s->upto("}}\n", 5);
    wait_subscribers($a, 1);
    my $i4 = publish($a, 'wake')->{json}{id};
    ($body, $eof) = $s->rest(5);
    is $body, json_msg($i4, $a, 'wake') . "{\"end\": \"reconnect\"}\n", 'a waiting poll: the message, then the end';
}

# --- choice by Accept; CometTransports ----------------------------------------
{
    my %ct = (
        'text/event-stream' => 'text/event-stream; charset=utf-8',
        'application/x-ndjson' => 'application/x-ndjson; charset=utf-8',
        'text/html,*/*;q=0.8' => 'text/html; charset=utf-8',
        '' => 'text/html; charset=utf-8',
    );
    for my $acc (sort keys %ct) {
        my $s = subscribe("/comet/$a", headers => [$acc ? (Accept => $acc) : ()]);
        is $s->{headers}{'content-type'}, $ct{$acc}, "Accept: '$acc' -> $ct{$acc}";
        $s->close;
    }
    my $s = subscribe("/comet/$a?transport=iframe", headers => [Accept => 'text/event-stream']);
    is $s->{headers}{'content-type'}, 'text/html; charset=utf-8', '?transport= wins over Accept';
    $s->close;
    is subscribe("/comet/$a?transport=bogus")->{status}, 400, 'transport=bogus: 400';
    is subscribe("/comet/$a?transport=xhr_streaming")->{status}, 400, 'a SockJS transport: 400';
    is subscribe("/comet-sse-only/$a")->{status}, 403, 'CometTransports sse: the iframe gets 403';
    is subscribe("/comet-sse-only/$a?transport=stream")->{status}, 403, '... stream too';
    $s = subscribe("/comet-sse-only/$a?transport=sse");
    is $s->{status}, 200, '... sse is allowed';
    $s->close;
    is subscribe("/comet-no-sse/$a", headers => [Accept => 'text/event-stream'])->{status}, 403,
        'CometTransports without sse: Accept: text/event-stream gets 403';
    my $js = http(GET => '/comet-sse-only/comet.js')->{body};
    like $js, qr/transports: \["sse"\]/, 'comet.js there offers only sse';
    $js = http(GET => '/comet/comet.js')->{body};
    like $js, qr/transports: \["iframe", "sse", "stream", "longpoll", "websocket"\]/,
        '... and all five by default';
}

# --- several channels in one stream, in publication order ---------------------
{
    my @ch = map { new_channel("multi$_") } 1 .. 3;
    my $path = join ',', @ch;
    my $iframe = subscribe("/comet/$path");
    my $nd = subscribe("/comet/$path?transport=stream");
    my $sse = subscribe("/comet/$path?transport=sse");
    $iframe->prelude;
    $nd->upto("}}\n", 5);
    $sse->upto("\n\n", 5);
    ok wait_subscribers($ch[2], 3), 'three streams of three channels';
    my @conns = pinned_connections(distinct => 2, min => 3);
    my @sent;
    for my $i (0 .. 29) {
        my $c = $ch[($i * 7 + int($i / 3)) % 3];
        my $res = publish($c, "m$i", conn => $conns[$i % @conns]);
        push @sent, "$c:$res->{json}{id}:m$i";
    }
    my @fi = map { $_ && $_->{type} eq 'p' ? "$_->{chan}:$_->{id}:$_->{data}" : 'none' } $iframe->messages(30, 10);
    is "@fi", "@sent", 'iframe: 30 messages of 3 channels, each once, with its channel, in publication order';
    my @fn;
    for (1 .. 30) {
        my $l = $nd->upto("\n", 5) // last;
        redo if $l eq "\n";
        push @fn, $l =~ /^\{"id": (\d+), "channel": "([^"]+)", "data": "([^"]*)"\}\n$/ ? "$2:$1:$3" : "junk:$l";
    }
    is "@fn", "@sent", 'ndjson: the same';
    my @fs;
    for (1 .. 30) {
        my $e = $sse->upto("\n\n", 5) // last;
        push @fs, $e =~ /^id: (\S+)\nevent: (\S+)\ndata: (.*)\n\n$/
            ? do { my ($ids, $c, $d) = ($1, $2, $3); my ($id) = $ids =~ /\Q$c\E:(\d+)/; "$c:$id:$d" }
            : "junk:$e";
    }
    is "@fs", "@sent", 'sse: the same';
    $_->close for $iframe, $nd, $sse, @conns;
}
