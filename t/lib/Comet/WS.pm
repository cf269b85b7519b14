package Comet::WS;

# A WebSocket client for the tests, written from RFC 6455: the handshake,
# frames masked as a client must (or not, to see the server refuse), and
# the server's frames read back byte for byte. Over HTTPS when the tests are
# (Comet::Test::Conn).
use strict;
use warnings;
use Exporter 'import';
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha1_base64);
use Compress::Raw::Zlib;
use Comet::Test ();

our @EXPORT = qw(ws_open ws_request ws_frame ws_send ws_recv ws_accept_of ws_deflate ws_inflate
                 WS_TEXT WS_BINARY WS_CLOSE WS_PING WS_PONG);

use constant { WS_CONT => 0, WS_TEXT => 1, WS_BINARY => 2, WS_CLOSE => 8, WS_PING => 9,
               WS_PONG => 10 };
use constant GUID => '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

# The Sec-WebSocket-Accept of a key, computed here (RFC 6455, 4.2.2).
sub ws_accept_of {
    my $a = sha1_base64($_[0] . GUID);
    return $a . '=' x ((4 - length($a) % 4) % 4);
}

# The handshake request's bytes (%o: key, version, headers => {...},
# proto, method).
sub ws_request {
    my ($path, %o) = @_;
    my %h = (Host => Comet::Test::hostport(), Upgrade => 'websocket',
             Connection => 'Upgrade', 'Sec-WebSocket-Version' => $o{version} // 13,
             'Sec-WebSocket-Key' => $o{key} // encode_base64(join('', map { chr rand 256 } 1 .. 16), ''),
             %{ $o{headers} // {} });
    my $req = ($o{method} // 'GET') . " $path " . ($o{proto} // 'HTTP/1.1') . "\r\n";
    for my $k (sort keys %h) {
        $req .= "$k: $h{$k}\r\n" if defined $h{$k};
    }
    return ($req . "\r\n", $h{'Sec-WebSocket-Key'});
}

# Open one: {conn, res (the handshake's answer), key}. %o as ws_request,
# plus after => bytes sent in the same write as the request.
sub ws_open {
    my ($path, %o) = @_;
    my $conn = $o{conn} // Comet::Test::Conn->new;
    my ($req, $key) = ws_request($path, %o);
    $conn->send_bytes($req . ($o{after} // ''));
    my $res = $conn->read_response(timeout => $o{timeout} // 10);
    return { conn => $conn, res => $res, key => $key };
}

# One frame's bytes: fin (default 1), mask (default 1), rsv bits.
sub ws_frame {
    my ($op, $payload, %o) = @_;
    my $fin = $o{fin} // 1;
    my $mask = $o{mask} // 1;
    my $len = length $payload;
    my $b = chr(($fin ? 0x80 : 0) | (($o{rsv} // 0) << 4) | $op);
    my $m = $mask ? 0x80 : 0;
    if ($len < 126)      { $b .= chr($m | $len) }
    elsif ($len < 65536) { $b .= chr($m | 126) . pack('n', $len) }
    else                 { $b .= chr($m | 127) . pack('Q>', $len) }
    return $b . $payload unless $mask;
    my $key = join '', map { chr rand 256 } 1 .. 4;
    my $masked = $payload ^ substr($key x (int($len / 4) + 1), 0, $len);
    return $b . $key . $masked;
}

sub ws_send {
    my ($ws, $op, $payload, %o) = @_;
    $ws->{conn}->send_bytes(ws_frame($op, $payload, %o));
}

# The next frame from the server: {fin, op, masked, payload, code, reason}
# (code and reason for a close), or undef if none came within $timeout
# (->{conn}{eof}: the connection ended).
sub ws_recv {
    my ($ws, $timeout) = @_;
    my $c = $ws->{conn};
    my $need = sub {
        my $buf = shift;
        return 0 if length $buf < 2;
        my $l = ord(substr $buf, 1, 1) & 0x7f;
        my $h = 2 + ($l == 126 ? 2 : $l == 127 ? 8 : 0) + ((ord(substr $buf, 1, 1) & 0x80) ? 4 : 0);
        return 0 if length $buf < $h;
        my $n = $l == 126 ? unpack('n', substr $buf, 2, 2)
              : $l == 127 ? unpack('Q>', substr $buf, 2, 8) : $l;
        return length $buf >= $h + $n ? $h + $n : 0;
    };
    $c->read_until(sub { $need->($_[0]) }, $timeout // 10) or return undef;
    my $frame = $c->take($need->($c->{buf}));
    my ($b0, $b1) = map { ord } split //, substr $frame, 0, 2;
    my $l = $b1 & 0x7f;
    my $h = 2 + ($l == 126 ? 2 : $l == 127 ? 8 : 0);
    my $f = { fin => $b0 >> 7, rsv => ($b0 >> 4) & 7, op => $b0 & 15, masked => $b1 >> 7,
              payload => substr($frame, $h + ($b1 >> 7 ? 4 : 0)) };
    if ($f->{op} == WS_CLOSE && length $f->{payload} >= 2) {
        $f->{code} = unpack 'n', substr $f->{payload}, 0, 2;
        $f->{reason} = substr $f->{payload}, 2;
    }
    return $f;
}

# permessage-deflate (RFC 7692) as a client does it, with zlib: a message's
# compressed payload (the sync flush's 4-byte tail stripped), and back.
sub ws_deflate {
    my ($d, $st) = Compress::Raw::Zlib::Deflate->new(-WindowBits => -15, -AppendOutput => 1);
    my $out = '';
    $d->deflate($_[0], $out);
    $d->flush($out, Z_SYNC_FLUSH);
    $out =~ s/\x00\x00\xff\xff\z// or die "no sync flush tail\n";
    return $out;
}

sub ws_inflate {
    my ($i) = Compress::Raw::Zlib::Inflate->new(-WindowBits => -15, -AppendOutput => 1,
                                                  -ConsumeInput => 1);
    my $in = $_[0] . "\x00\x00\xff\xff";
    my $out = '';
    my $st = $i->inflate($in, $out);
    return ($st == Z_OK || $st == Z_STREAM_END || $st == Z_BUF_ERROR) ? $out : undef;
}

1;
