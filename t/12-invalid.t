# What both handlers refuse: channel ids other than [A-Za-z0-9_-]{1,128},
# bad since, cb and transport parameters.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

my @bad_ids = (
    'a.b', 'a..b', '..a', 'a' x 129, 'a%20b', '%C3%A9t%C3%A9', '~x', 'a;b', 'a:b',
    'a%2Cb',                     # publishers: one channel, no lists
    '%3Cscript%3Ealert(1)%3C',
);
my @bad_lists = (',', 'a,', ',a', 'a,,b', 'a,b.c', join(',', map { "c$_" } 1 .. 17));
my @bad_since = ('', 'abc', '-1', '+1', '1.5', '1e3', '%201', '0x10', '99999999999999999999',
                 '18446744073709551616', '1%00');
my @bad_cb = ('', 'alert(1)', '1a', 'a.', '.a', 'a..b', 'a-b', 'a%20b', 'a;b', 'a[0]',
              '%3C%2Fscript%3E', 'a%00', 'x' x 129, 'a.' x 64 . 'b');

plan tests => 3 * @bad_ids + @bad_lists + @bad_since + @bad_cb + 13,
    need_module('comet');

for my $id (@bad_ids) {
    my $show = length $id > 40 ? substr($id, 0, 20) . '...(' . length($id) . ')' : $id;
    my $sub = $id eq 'a%2Cb' ? 200 : 400;    # a list of two channels, for a stream
    my $s = subscribe("/comet/$id");
    is $s->{status}, $sub, "GET /comet/$show: $sub";
    $s->close;
    is http(POST => "/comet-publish/$id", body => 'x')->{status}, 400,
        "POST /comet-publish/$show: 400";
    is http(GET => "/comet-publish/$id")->{status}, 400, "GET /comet-publish/$show: 400";
}
for my $list (@bad_lists) {
    my $show = length $list > 40 ? substr($list, 0, 20) . '...' : $list;
    my $s = subscribe("/comet/$list");
    is $s->{status}, 400, "GET /comet/$show: 400";
    $s->close;
}

# the longest id, the most channels
{
    my $long = 'L' x 128;
    my $s = subscribe("/comet/$long");
    is $s->{status}, 200, 'a channel id of 128 characters: 200';
    $s->close;
    is publish($long, 'x')->{status}, 201, '... publishing to it: 201';
    delete_channel($long);
    $s = subscribe('/comet/' . join(',', map { "c$_" } 1 .. 16));
    is $s->{status}, 200, '16 channels in one stream: 200';
    $s->close;
}

# Encoded NUL and slash never reach the module: httpd answers 404 itself.
is subscribe('/comet/a%00b')->{status}, 404, 'GET /comet/a%00b: 404 (httpd)';
is http(POST => '/comet-publish/a%2Fb', body => 'x')->{status}, 404,
    'POST /comet-publish/a%2Fb: 404 (httpd)';

my $chan = new_channel('params');
for my $since (@bad_since) {
    is subscribe("/comet/$chan?since=$since")->{status}, 400, "since=$since: 400";
}
for my $cb (@bad_cb) {
    my $show = length $cb > 40 ? substr($cb, 0, 20) . '...(' . length($cb) . ')' : $cb;
    is subscribe("/comet/$chan?cb=$cb")->{status}, 400, "cb=$show: 400";
}
is subscribe("/comet/$chan?transport=sse-nope")->{status}, 400, 'transport=sse-nope: 400';
{
    my $s = subscribe("/comet/$chan?since=18446744073709551615");
    is $s->{status}, 200, 'since=2^64-1: 200';
    $s->close;
    $s = subscribe("/comet/$chan?cb=" . join('.', ('abcdefg') x 16));
    is $s->{status}, 200, 'cb of 127 characters: 200';
    $s->close;
}

# The channel is what follows the location: nothing else in the path.
{
    my $s = subscribe('/comet/foo/bar');
    is $s->{status}, 400, 'GET /comet/foo/bar: 400';
    $s->close;
    is http(POST => '/comet-publish/foo/bar', body => 'x')->{status}, 400,
        'POST /comet-publish/foo/bar: 400';
    is http(GET => '/comet-publish/')->{status}, 200, 'GET /comet-publish/: the store';
}

# A location of its own gives one channel other settings: the URL still
# names it.
{
    my $c = 'percfg';
    delete_channel($c);
    my @ids = map { publish($c, "m$_")->{json}{id} } 1 .. 3;
    my $info = channel_info($c);
    is $info->{messages}, 2, '<Location /comet-publish/percfg> CometMessageBuffer 2: 2 kept';
    is $info->{last_id}, $ids[-1], '... the last one';
    delete_channel($c);
}
delete_channel($chan);
