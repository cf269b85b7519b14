# Who may read or write what. A session of a location with CometSocketCookie
# On is bound to the JSESSIONID of the client that opened it, if it had one
# (else it got "dummy", sockjs-node's, and the session is bound to none):
# another client, with its own cookie or none, is told 404 and the refusal is
# logged; its sends reach nothing. Publish locations are protected
# by Apache's own access control: a client bound to 127.0.0.2 is refused by
# `Require ip 127.0.0.1` (403, logged), while `Require local` admits all of
# 127.0.0.0/8.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);

plan tests => 26, need_module('comet');

my $loc = '/cookie_needed_echo';

# --- the cookie: sockjs-node's ---------------------------------------------
# /info sets none; session URLs echo the client's, else set "dummy", which
# binds nothing (every client without a cookie gets it)
{
    ok !exists http(GET => "$loc/info")->{headers}{'set-cookie'}, '/info sets no cookie';
    my $sid = new_session();
    my $res = http(POST => sjs_path($loc, $sid, 'xhr'));
    is $res->{headers}{'set-cookie'}, 'JSESSIONID=dummy; path=/; HttpOnly',
        'a client without a cookie gets JSESSIONID=dummy; HttpOnly';
    is http(POST => sjs_path($loc, $sid, 'xhr_send'), body => '["x"]',
            headers => [Cookie => 'JSESSIONID=dummy'])->{status}, 204,
        '... and its session is bound to none: "dummy" sends to it';
}

# --- a session bound to its cookie ------------------------------------------
my $alice = 'JSESSIONID=' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $mallory = 'JSESSIONID=' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $sid = new_session();
my $res = http(POST => sjs_path($loc, $sid, 'xhr'), headers => [Cookie => $alice]);
is $res->{body}, "o\n", "alice opens session $sid";
like $res->{headers}{'set-cookie'} // '', qr/^\Q$alice\E; path=\/; HttpOnly$/, '... her cookie kept';

for my $case (['another cookie', [Cookie => $mallory]], ['no cookie', []],
              ['a cookie of another name', [Cookie => 'SESSIONID=' . substr($alice, 11)]]) {
    my ($what, $hdr) = @$case;
    my $mark = log_mark();
    $res = http(POST => sjs_path($loc, $sid, 'xhr'), headers => $hdr);
    is $res->{status}, 404, "a poll of her session with $what: 404";
    ok wait_log($mark, qr/CMT00120: .*\Q$sid\E.*session bound to another client's cookie/),
        '... logged: bound to another client\'s cookie';
}
{
    my $mark = log_mark();
    $res = http(POST => sjs_path($loc, $sid, 'xhr_send'), body => '["from mallory"]',
                headers => [Cookie => $mallory]);
    is $res->{status}, 404, 'a send to her session with another cookie: 404';
    ok wait_log($mark, qr/session bound to another client's cookie/), '... logged';
    $res = subscribe(sjs_path($loc, $sid, 'eventsource'), headers => [Cookie => $mallory]);
    is $res->{status}, 404, 'an eventsource receiver with another cookie: 404';
    $res->close;
}
# she still has it, and nothing of mallory's
{
    is http(POST => sjs_path($loc, $sid, 'xhr_send'), body => '["from alice"]',
            headers => [Cookie => $alice])->{status}, 204, 'alice sends: 204';
    my $body = '';
    my $deadline = time + 10;
    while ($body !~ /from alice/ && time < $deadline) {
        $body .= http(POST => sjs_path($loc, $sid, 'xhr'), headers => [Cookie => $alice],
                      timeout => 30)->{body};
    }
    is $body, qq(a["from alice"]\n), '... and reads her own echo, none of mallory\'s';
}
# guessing: ids are the client's choice, so a guess opens a session of the
# guesser's own; it never reaches alice's (a bound one answers 404 whatever
# the id)
{
    my $hits = 0;
    for my $guess ($sid, uc $sid, "$sid ", "${sid}0", substr($sid, 0, -1)) {
        my $r = http(POST => sjs_path($loc, $guess =~ s/ /%20/r, 'xhr'), headers => [Cookie => $mallory]);
        $hits++ if $r->{status} == 200 && $r->{body} =~ /from alice/;
    }
    is $hits, 0, 'ids near hers, with another cookie: nothing of hers';
}
# without CometSocketCookie, ids are not bound (the documented default)
{
    my $s = new_session();
    http(POST => sjs_path('/echo', $s, 'xhr'), headers => [Cookie => $alice]);
    is http(POST => sjs_path('/echo', $s, 'xhr_send'), body => '["x"]',
            headers => [Cookie => $mallory])->{status}, 204,
        'CometSocketCookie Off: the id alone names the session';
}

# --- publishers: Apache's access control ------------------------------------
sub from {
    my ($addr, @req) = @_;
    local $Comet::Test::LOCAL_ADDR = $addr;
    return http(@req);
}
SKIP: {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.2', PeerAddr => '127.0.0.1',
                                      PeerPort => server_port(), Proto => 'tcp', Timeout => 3);
    skip 'cannot bind a client socket to 127.0.0.2', 8 unless $probe;
    close $probe;
    my $chan = new_channel('acl');
    my $mark = log_mark();
    $res = from('127.0.0.2', POST => "/comet-publish-strict/$chan", body => 'intruder');
    is $res->{status}, 403, 'Require ip 127.0.0.1: a publish from 127.0.0.2 is refused (403)';
    is $res->{headers}{'x-content-type-options'}, 'nosniff', '... X-Content-Type-Options: nosniff';
    ok wait_log($mark, qr/AH01630: client denied by server configuration: .*comet-publish-strict/),
        '... logged (AH01630)';
    is channel_info($chan), undef, '... nothing was published';
    is from('127.0.0.2', DELETE => "/comet-publish-strict/$chan")->{status}, 403,
        '... nor may it delete';
    is from('127.0.0.1', POST => "/comet-publish-strict/$chan", body => 'ok')->{status}, 201,
        'from 127.0.0.1: 201';
    is from('127.0.0.2', POST => "/comet-publish/$chan", body => 'x')->{status}, 201,
        'Require local: 127.0.0.2 is local (all of 127.0.0.0/8 and ::1)';
    my $s = do { local $Comet::Test::LOCAL_ADDR = '127.0.0.2'; subscribe("/comet/$chan") };
    is $s->{status}, 200, 'subscribing is open to anyone (no Require on /comet)';
    $s->close;
    delete_channel($chan);
}
