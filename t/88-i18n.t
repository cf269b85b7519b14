# The widgets' strings: /i18n/<lang>.json|.js, /i18n.json|.js negotiated by
# Accept-Language, CometTranslate overrides, and comet.js carrying the
# table of the request's language.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Encode qw(decode);

plan tests => 42, need_module('comet');

my %connected = (en => 'Connected', fr => "Connect\x{e9}", de => 'Verbunden', es => 'Conectado');
my @keys = qw(CONNECTING CONNECTED DISCONNECTED RECONNECTING_IN CHANNEL_CLOSED SESSION_CLOSED
              YOUR_NICK_IS NICK JOINED LEFT SAYS SEND PUBLISH MESSAGE CLOCK BOARD CHAT);

sub table {
    my ($res) = @_;
    return eval { JSON::PP->new->decode(decode('UTF-8', $res->{body}, Encode::FB_CROAK)) };
}

# --- /i18n/<lang>.json --------------------------------------------------------
for my $lang (qw(en fr de es)) {
    my $res = http(GET => "/comet/i18n/$lang.json");
    my $t = table($res);
    is "$res->{status} " . ($res->{headers}{'content-type'} // ''), '200 application/json; charset=utf-8',
        "i18n/$lang.json: 200, JSON";
    is $t && $t->{lang}, $lang, "... lang: $lang";
    is $t && $t->{strings}{CONNECTED}, $connected{$lang}, "... CONNECTED: $connected{$lang} (valid UTF-8)";
    is join(' ', sort keys %{ $t ? $t->{strings} : {} }), join(' ', sort @keys), '... every key';
}
{
    my $res = http(GET => '/comet/i18n/fr.json');
    is $res->{headers}{'content-language'}, 'fr', 'Content-Language: fr';
    unlike $res->{headers}{vary} // '', qr/Accept-Language/, '... not negotiated: no Vary';
    $res = http(GET => '/comet/i18n/fr.js');
    is $res->{headers}{'content-type'}, 'application/javascript; charset=utf-8', 'i18n/fr.js: JavaScript';
    like $res->{body}, qr/\A\(function \(g\) \{\nvar n = "Pxxo_Widget_Comet", lang = "fr", s = \{.*"CONNECTED": "Connect\xc3\xa9"/s,
        '... the table for the class';
    like http(GET => '/comet-classid/i18n/de.js')->{body}, qr/var n = "My_Comet", lang = "de"/,
        '... named after CometClassID';
    my @bad = map { my $r = http(GET => "/comet/i18n/$_"); "$_ $r->{status}" }
        qw(ja.json xx.js fr.txt fr fr/x.json en-US.json .json);
    is "@bad", 'ja.json 404 xx.js 404 fr.txt 404 fr 404 fr/x.json 404 en-US.json 200 .json 404',
        'unknown languages and names: 404 (a regional tag is its language)';
    is http(POST => '/comet/i18n/fr.json', body => '')->{status}, 405, 'POST: 405';
}

# --- /i18n.json: Accept-Language ----------------------------------------------
{
    my @cases = (
        [undef, 'en'], ['fr', 'fr'], ['de-CH', 'de'], ['es_MX', 'es'], ['FR-ca', 'fr'],
        ['ja, de;q=0.5', 'de'], ['fr;q=0.3, de;q=0.8, es;q=0.5', 'de'], ['fr, de', 'fr'],
        ['fr;q=0, de;q=0.1', 'de'], ['fr;q=0', 'en'], ['ja', 'en'], ['*', 'en'],
        ['*;q=0.5, es;q=0.9', 'es'], ['fr;q=bad, es;q=0.2', 'es'], ['en-GB;q=0.7, fr-BE;q=0.71', 'fr'],
        ['  de ; q=1.0 ', 'de'],
    );
    my @got = map {
        my $r = http(GET => '/comet/i18n.json', headers => [defined $_->[0] ? ('Accept-Language' => $_->[0]) : ()]);
        my $t = table($r);
        ($_->[0] // 'none') . ' => ' . ($t ? $t->{lang} : 'bad') . '/' . ($r->{headers}{'content-language'} // '-')
    } @cases;
    is_deeply \@got, [map { ($_->[0] // 'none') . " => $_->[1]/$_->[1]" } @cases],
        'i18n.json: the language Accept-Language prefers (q-values, regions, *), said in Content-Language'
        or diag explain \@got;
    my $r = http(GET => '/comet/i18n.json', headers => ['Accept-Language' => 'de']);
    like $r->{headers}{vary} // '', qr/Accept-Language/, '... Vary: Accept-Language';
    is table($r)->{strings}{CONNECTED}, 'Verbunden', '... its table';
    $r = http(GET => '/comet/i18n.js', headers => ['Accept-Language' => 'es']);
    like $r->{body}, qr/lang = "es"/, 'i18n.js likewise';
}

# --- CometTranslate -----------------------------------------------------------
{
    my %t = map { $_ => table(http(GET => "/comet-i18n/i18n/$_.json"))->{strings} } qw(en fr de es);
    is join(',', map { $t{$_}{SEND} } qw(en fr de es)), 'Go,Go,Go,Go', 'CometTranslate KEY text: every language';
    is $t{fr}{CONNECTED}, 'En ligne', 'CometTranslate fr KEY text: French';
    is join(',', map { $t{$_}{CONNECTED} } qw(en de es)), 'Connected,Verbunden,Conectado', '... only French';
    is $t{de}{MY_KEY}, 'Mein Text', 'a new key, for German';
    ok !exists $t{en}{MY_KEY} && !exists $t{fr}{MY_KEY}, '... only';
    is join(',', map { $t{$_}{GREETING} // 'none' } qw(en fr de es)), join(',', ('Hello %s') x 4),
        'a new key for every language';
    is $t{fr}{PUBLISH}, 'Publier', 'the other strings unchanged';
    is table(http(GET => '/comet/i18n/en.json'))->{strings}{SEND}, 'Send', 'other locations unchanged';
}

# --- comet.js ---------------------------------------------------------------
{
    my $js = http(GET => '/comet/comet.js', headers => ['Accept-Language' => 'fr-FR,fr;q=0.9,en;q=0.5']);
    like $js->{body}, qr/lang: "fr", strings: \{[^}]*"CONNECTED": "Connect\xc3\xa9"/, 'comet.js: lang and strings of Accept-Language';
    like $js->{headers}{vary} // '', qr/Accept-Language/, '... Vary: Accept-Language';
    my $en = http(GET => '/comet/comet.js');
    like $en->{body}, qr/lang: "en", strings: \{[^}]*"CONNECTED": "Connected"/, '... English without it';
    isnt $en->{headers}{etag}, $js->{headers}{etag}, '... another ETag per language';
    my $over = http(GET => '/comet-i18n/comet.js', headers => ['Accept-Language' => 'fr']);
    like $over->{body}, qr/"CONNECTED": "En ligne"/, '... with the location\'s CometTranslate';
    like $over->{body}, qr/"SEND": "Go"/, '... all of them';
    my $r304 = http(GET => '/comet/comet.js', headers => ['Accept-Language' => 'fr-FR,fr;q=0.9,en;q=0.5',
                                                       'If-None-Match' => $js->{headers}{etag}]);
    is $r304->{status}, 304, '... 304 for the same language and ETag';
}
