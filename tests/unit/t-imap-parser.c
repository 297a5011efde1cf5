/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * t-imap-parser.c - the IMAP response parser and its interpreters.
 *
 * Every table case runs twice: fed whole and fed one byte at a time. Both
 * must give the same canonical dump (imap_response_dump()), the same body
 * sink events and the same error; the byte-wise run must say "need more"
 * (0) until the very last byte.
 */
#include "common.h"
#include "imap/parser.h"
#include "util/buf.h"
#include "util/flags.h"
#include "tap.h"

/* ---- a sink that records what it gets ---- */

struct rec {
	struct buf log;
	uint64_t bytes;
	int fail_at;         /* fail the n-th callback (1-based), 0: never */
	int calls;
};

static int rec_step(struct rec *r)
{
	return ++r->calls == r->fail_at ? -1 : 0;
}

static int rec_begin(void *ctx, uint32_t seq, const char *section, uint64_t size)
{
	struct rec *r = ctx;

	ASSERT(buf_addf(&r->log, "<%u %s %llu:", seq, section,
			(unsigned long long)size) == 0);
	return rec_step(r);
}

static int rec_data(void *ctx, const void *p, size_t n)
{
	struct rec *r = ctx;
	const unsigned char *s = p;
	size_t i;

	r->bytes += n;
	for (i = 0; i < n; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			ASSERT(buf_addch(&r->log, (char)s[i]) == 0);
		else
			ASSERT(buf_addf(&r->log, "\\x%02x", s[i]) == 0);
	}
	return rec_step(r);
}

static int rec_end(void *ctx)
{
	struct rec *r = ctx;

	ASSERT(buf_addstr(&r->log, ">") == 0);
	return rec_step(r);
}

/* ---- limits ---- */

enum lim { L_DEFAULT, L_TINY, L_DEPTH2, L_ARGS5, L_LIT4 };

static void get_limits(enum lim which, struct imap_parser_limits *l)
{
	imap_parser_limits_default(l);
	switch (which) {
	case L_DEFAULT:
		break;
	case L_TINY:
		l->max_line = 40;
		l->max_literal = 8;
		l->max_body = 16;
		break;
	case L_DEPTH2:
		l->max_depth = 2;
		break;
	case L_ARGS5:
		l->max_args = 5;
		break;
	case L_LIT4:
		l->max_literal = 4;
		l->max_body = 10;
		break;
	}
}

/* ---- running one input ---- */

struct outcome {
	int ret;             /* 1 or -1 */
	char *dump;          /* response dump, or error message */
	char *sink;          /* recorded sink events */
	size_t consumed;     /* total bytes consumed */
	bool early;          /* byte-wise: something other than 0 before the end */
};

static void outcome_free(struct outcome *o)
{
	free(o->dump);
	free(o->sink);
}

/* Feed in chunks of `step` bytes (0: all at once) until one response or
 * an error. */
static void run(const char *in, size_t len, enum lim lim, int fail_at,
		size_t step, struct outcome *o)
{
	struct imap_parser_limits l;
	struct imap_parser *p;
	struct rec r;
	struct imap_body_sink sink = { rec_begin, rec_data, rec_end, &r };
	const struct imap_response *resp = NULL;
	size_t pos = 0, consumed, n;
	int ret = 0;

	memset(o, 0, sizeof(*o));
	memset(&r, 0, sizeof(r));
	buf_init(&r.log, BUF_MAX_UNLIMITED);
	r.fail_at = fail_at;
	get_limits(lim, &l);
	p = imap_parser_new(&l);
	imap_parser_set_body_sink(p, &sink);
	while (pos < len) {
		n = step == 0 || len - pos < step ? len - pos : step;
		ret = imap_parser_feed(p, in + pos, n, &consumed, &resp);
		if (consumed > n)
			BUG("consumed more than fed");
		pos += consumed;
		if (ret != 0)
			break;
		if (consumed != n)
			o->early = true;
	}
	if (ret != 0 && pos != len)
		o->early = true;
	o->ret = ret;
	o->consumed = pos;
	if (ret > 0)
		o->dump = imap_response_dump(resp);
	else if (ret < 0)
		o->dump = xstrdup(imap_parser_error(p));
	else
		o->dump = xstrdup("(incomplete)");
	o->sink = buf_take(&r.log, NULL);
	imap_parser_free(&p);
	ASSERT(p == NULL);
}

struct pcase {
	const char *name;
	const char *in;
	size_t len;
	const char *want;    /* dump; for errors a substring of the message */
	int ret;             /* 1 or -1 */
	const char *sink;    /* expected sink log, NULL: "" */
	enum lim lim;
	int fail_at;
};

#define IN(s) s, sizeof(s) - 1
#define OKC(n, i, w) { n, IN(i), w, 1, NULL, L_DEFAULT, 0 }
#define ERR(n, i, w) { n, IN(i), w, -1, NULL, L_DEFAULT, 0 }
#define ERRL(n, i, w, l) { n, IN(i), w, -1, NULL, l, 0 }

static const struct pcase cases[] = {
	/* --- status responses --- */
	OKC("greeting", "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.\r\n",
	    "untagged status=OK keyword=OK code=CAPABILITY/3 code-args=[a:\"IMAP4rev1\" a:\"LITERAL+\" a:\"SASL-IR\"] text=\"Dovecot ready.\""),
	OKC("untagged OK alone", "* OK\r\n", "untagged status=OK keyword=OK text=\"\""),
	OKC("untagged OK space", "* OK \r\n", "untagged status=OK keyword=OK text=\"\""),
	OKC("tagged OK no text", "a1 OK\r\n", "tagged a1 status=OK keyword=OK text=\"\""),
	OKC("tagged NO", "a2 NO [TRYCREATE] no such mailbox\r\n",
	    "tagged a2 status=NO keyword=NO code=TRYCREATE/14 code-args=[] text=\"no such mailbox\""),
	OKC("tagged BAD lower case", "x.9 bad command unknown\r\n",
	    "tagged x.9 status=BAD keyword=BAD text=\"command unknown\""),
	OKC("PREAUTH", "* PREAUTH [CAPABILITY IMAP4rev2] logged in\r\n",
	    "untagged status=PREAUTH keyword=PREAUTH code=CAPABILITY/3 code-args=[a:\"IMAP4rev2\"] text=\"logged in\""),
	OKC("BYE", "* BYE Logging out\r\n", "untagged status=BYE keyword=BYE text=\"Logging out\""),
	OKC("BYE no text", "* BYE\r\n", "untagged status=BYE keyword=BYE text=\"\""),
	OKC("code without text", "a3 OK [READ-WRITE]\r\n",
	    "tagged a3 status=OK keyword=OK code=READ-WRITE/13 code-args=[] text=\"\""),
	OKC("code then space only", "a3 OK [READ-ONLY] \r\n",
	    "tagged a3 status=OK keyword=OK code=READ-ONLY/12 code-args=[] text=\"\""),
	OKC("text with brackets later", "a4 OK done [really]\r\n",
	    "tagged a4 status=OK keyword=OK text=\"done [really]\""),
	OKC("UTF-8 text", "* OK Gr\xc3\xbc\xc3\x9f" "e\r\n",
	    "untagged status=OK keyword=OK text=\"Gr\\xc3\\xbc\\xc3\\x9fe\""),

	/* --- response codes --- */
	OKC("ALERT", "* OK [ALERT] system going down\r\n",
	    "untagged status=OK keyword=OK code=ALERT/2 code-args=[] text=\"system going down\""),
	OKC("UIDVALIDITY", "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
	    "untagged status=OK keyword=OK code=UIDVALIDITY/4 num=3857529045 code-args=[a:\"3857529045\"] text=\"UIDs valid\""),
	OKC("UIDNEXT", "* OK [UIDNEXT 4392] Predicted next UID\r\n",
	    "untagged status=OK keyword=OK code=UIDNEXT/5 num=4392 code-args=[a:\"4392\"] text=\"Predicted next UID\""),
	OKC("HIGHESTMODSEQ", "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
	    "untagged status=OK keyword=OK code=HIGHESTMODSEQ/6 num=715194045007 code-args=[a:\"715194045007\"] text=\"Highest\""),
	OKC("NOMODSEQ", "* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences\r\n",
	    "untagged status=OK keyword=OK code=NOMODSEQ/7 code-args=[] text=\"Sorry, this mailbox format doesn't support modsequences\""),
	OKC("APPENDUID", "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n",
	    "tagged A003 status=OK keyword=OK code=APPENDUID/8 uidvalidity=38505 set=3955 code-args=[a:\"38505\" a:\"3955\"] text=\"APPEND completed\""),
	OKC("COPYUID", "A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
	    "tagged A004 status=OK keyword=OK code=COPYUID/9 uidvalidity=38505 set=304,319:320 set2=3956:3958 code-args=[a:\"38505\" a:\"304,319:320\" a:\"3956:3958\"] text=\"Done\""),
	OKC("PERMANENTFLAGS", "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
	    "untagged status=OK keyword=OK code=PERMANENTFLAGS/10 code-args=[a:\"\\\\Deleted\" a:\"\\\\Seen\" a:\"\\\\*\"] text=\"Limited\""),
	OKC("PERMANENTFLAGS empty", "* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n",
	    "untagged status=OK keyword=OK code=PERMANENTFLAGS/10 code-args=[] text=\"No permanent flags permitted\""),
	OKC("CLOSED", "* OK [CLOSED] Previous mailbox closed\r\n",
	    "untagged status=OK keyword=OK code=CLOSED/11 code-args=[] text=\"Previous mailbox closed\""),
	OKC("NONEXISTENT", "a NO [NONEXISTENT] Unknown Mailbox: Foo\r\n",
	    "tagged a status=NO keyword=NO code=NONEXISTENT/15 code-args=[] text=\"Unknown Mailbox: Foo\""),
	OKC("AUTHENTICATIONFAILED", "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
	    "tagged a status=NO keyword=NO code=AUTHENTICATIONFAILED/16 code-args=[] text=\"Authentication failed.\""),
	OKC("UNAVAILABLE", "a NO [UNAVAILABLE] try later\r\n",
	    "tagged a status=NO keyword=NO code=UNAVAILABLE/17 code-args=[] text=\"try later\""),
	OKC("ALREADYEXISTS", "a NO [ALREADYEXISTS] Mailbox already exists\r\n",
	    "tagged a status=NO keyword=NO code=ALREADYEXISTS/18 code-args=[] text=\"Mailbox already exists\""),
	OKC("MODIFIED", "d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n",
	    "tagged d105 status=OK keyword=OK code=MODIFIED/19 code-args=[a:\"7,9\"] text=\"Conditional STORE failed\""),
	OKC("unknown code raw", "* NO [X-WEIRD a \"b( c] text\r\n",
	    "untagged status=NO keyword=NO code=X-WEIRD/1 code-args=[a:\"a \\\"b( c\"] text=\"text\""),
	OKC("BADCHARSET list", "a NO [BADCHARSET (UTF-8 \"ISO-8859-1\")] bad\r\n",
	    "tagged a status=NO keyword=NO code=BADCHARSET/1 code-args=[(a:\"UTF-8\" \"ISO-8859-1\")] text=\"bad\""),
	OKC("REFERRAL raw", "a NO [REFERRAL imap://user;AUTH=*@SERVER2/] Remote\r\n",
	    "tagged a status=NO keyword=NO code=REFERRAL/1 code-args=[a:\"imap://user;AUTH=*@SERVER2/\"] text=\"Remote\""),
	OKC("code text glued", "* OK [ALERT]hello\r\n",
	    "untagged status=OK keyword=OK code=ALERT/2 code-args=[] text=\"hello\""),
	OKC("capability trailing space", "* OK [CAPABILITY IMAP4rev1 ] x\r\n",
	    "untagged status=OK keyword=OK code=CAPABILITY/3 code-args=[a:\"IMAP4rev1\"] text=\"x\""),

	/* --- continuation --- */
	OKC("continuation text", "+ Ready for literal data\r\n",
	    "continuation text=\"Ready for literal data\" args=[]"),
	OKC("continuation base64", "+ YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMCAQGiQgRA\r\n",
	    "continuation text=\"YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEFoQMCAQ+iSzBJoAMCAQGiQgRA\" args=[]"),
	OKC("continuation bare", "+\r\n", "continuation text=\"\" args=[]"),
	OKC("continuation empty", "+ \r\n", "continuation text=\"\" args=[]"),
	OKC("continuation with code", "+ [ALERT] idling\r\n",
	    "continuation code=ALERT/2 code-args=[] text=\"idling\" args=[]"),

	/* --- simple untagged data --- */
	OKC("EXISTS", "* 23 EXISTS\r\n", "untagged number=23 keyword=EXISTS args=[]"),
	OKC("RECENT", "* 0 RECENT\r\n", "untagged number=0 keyword=RECENT args=[]"),
	OKC("EXPUNGE", "* 4294967295 EXPUNGE\r\n", "untagged number=4294967295 keyword=EXPUNGE args=[]"),
	OKC("CAPABILITY data", "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN ID ENABLE IDLE\r\n",
	    "untagged keyword=CAPABILITY args=[a:\"IMAP4rev1\" a:\"STARTTLS\" a:\"AUTH=PLAIN\" a:\"ID\" a:\"ENABLE\" a:\"IDLE\"]"),
	OKC("FLAGS", "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n",
	    "untagged keyword=FLAGS args=[(a:\"\\\\Answered\" a:\"\\\\Flagged\" a:\"\\\\Deleted\" a:\"\\\\Seen\" a:\"\\\\Draft\" a:\"$Forwarded\")]"),
	OKC("ENABLED", "* ENABLED CONDSTORE QRESYNC\r\n",
	    "untagged keyword=ENABLED args=[a:\"CONDSTORE\" a:\"QRESYNC\"]"),
	OKC("SEARCH", "* SEARCH 2 84 882\r\n",
	    "untagged keyword=SEARCH args=[a:\"2\" a:\"84\" a:\"882\"]"),
	OKC("SEARCH empty", "* SEARCH\r\n", "untagged keyword=SEARCH args=[]"),
	OKC("SEARCH trailing space", "* SEARCH \r\n", "untagged keyword=SEARCH args=[]"),
	OKC("ESEARCH", "* ESEARCH (TAG \"a567\") UID ALL 4:18,21,28\r\n",
	    "untagged keyword=ESEARCH args=[(a:\"TAG\" \"a567\") a:\"UID\" a:\"ALL\" a:\"4:18,21,28\"]"),
	OKC("ESEARCH count", "* ESEARCH (TAG \"a\") UID COUNT 17 MIN 4 MAX 3800\r\n",
	    "untagged keyword=ESEARCH args=[(a:\"TAG\" \"a\") a:\"UID\" a:\"COUNT\" a:\"17\" a:\"MIN\" a:\"4\" a:\"MAX\" a:\"3800\"]"),
	OKC("VANISHED EARLIER", "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n",
	    "untagged keyword=VANISHED args=[(a:\"EARLIER\") a:\"41,43:116,118,120:211,214:540\"]"),
	OKC("VANISHED", "* VANISHED 405,407,410,425\r\n",
	    "untagged keyword=VANISHED args=[a:\"405,407,410,425\"]"),
	OKC("STATUS", "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 3 HIGHESTMODSEQ 7011231777)\r\n",
	    "untagged keyword=STATUS args=[a:\"blurdybloop\" (a:\"MESSAGES\" a:\"231\" a:\"UIDNEXT\" a:\"44292\" a:\"UIDVALIDITY\" a:\"1\" a:\"UNSEEN\" a:\"3\" a:\"HIGHESTMODSEQ\" a:\"7011231777\")]"),
	OKC("keyword lower case", "* list () \"/\" INBOX\r\n",
	    "untagged keyword=LIST args=[() \"/\" a:\"INBOX\"]"),

	/* --- LIST --- */
	OKC("LIST special-use", "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
	    "untagged keyword=LIST args=[(a:\"\\\\HasNoChildren\" a:\"\\\\Sent\") \"/\" \"Sent Items\"]"),
	OKC("LIST NIL delimiter", "* LIST (\\Noselect) NIL \"\"\r\n",
	    "untagged keyword=LIST args=[(a:\"\\\\Noselect\") NIL \"\"]"),
	OKC("LIST literal name", "* LIST () \".\" {8}\r\nfoo\"bar)\r\n",
	    "untagged keyword=LIST args=[() \".\" {8}\"foo\\\"bar)\"]"),
	OKC("LIST escaped delimiter", "* LIST () \"\\\\\" Work\\Sub\r\n",
	    "untagged keyword=LIST args=[() \"\\\\\" a:\"Work\\\\Sub\"]"),
	OKC("LIST extended CHILDINFO", "* LIST (\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
	    "untagged keyword=LIST args=[(a:\"\\\\Subscribed\") \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))]"),
	OKC("LIST 8-bit name", "* LIST () \"/\" \"Entw\xc3\xbc" "rfe\"\r\n",
	    "untagged keyword=LIST args=[() \"/\" \"Entw\\xc3\\xbcrfe\"]"),
	OKC("LIST 8-bit atom name", "* LIST () \"/\" \xe6\x97\xa5\xe6\x9c\xac\r\n",
	    "untagged keyword=LIST args=[() \"/\" a:\"\\xe6\\x97\\xa5\\xe6\\x9c\\xac\"]"),
	OKC("LIST tilde atom", "* LIST () \"/\" ~peter/mail/&U,BTFw-\r\n",
	    "untagged keyword=LIST args=[() \"/\" a:\"~peter/mail/&U,BTFw-\"]"),
	OKC("LIST Gmail", "* LIST (\\All \\HasNoChildren) \"/\" \"[Gmail]/All Mail\"\r\n",
	    "untagged keyword=LIST args=[(a:\"\\\\All\" a:\"\\\\HasNoChildren\") \"/\" \"[Gmail]/All Mail\"]"),
	OKC("LIST bracket atom", "* LIST () \"/\" [Gmail]/Spam\r\n",
	    "untagged keyword=LIST args=[() \"/\" a:\"[Gmail]/Spam\"]"),
	OKC("LSUB", "* LSUB () \".\" #news.comp.mail.misc\r\n",
	    "untagged keyword=LSUB args=[() \".\" a:\"#news.comp.mail.misc\"]"),

	/* --- FETCH --- */
	OKC("FETCH flags uid modseq", "* 12 FETCH (UID 100 FLAGS (\\Seen $Forwarded) MODSEQ (12121231000))\r\n",
	    "untagged number=12 keyword=FETCH args=[(a:\"UID\" a:\"100\" a:\"FLAGS\" (a:\"\\\\Seen\" a:\"$Forwarded\") a:\"MODSEQ\" (a:\"12121231000\"))]"),
	OKC("FETCH size date emailid", "* 1 FETCH (RFC822.SIZE 44827 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" EMAILID (M6d99ac3275bb4e))\r\n",
	    "untagged number=1 keyword=FETCH args=[(a:\"RFC822.SIZE\" a:\"44827\" a:\"INTERNALDATE\" \"17-Jul-1996 02:44:25 -0700\" a:\"EMAILID\" (a:\"M6d99ac3275bb4e\"))]"),
	OKC("FETCH quoted escapes", "* 1 FETCH (ENVELOPE (NIL \"a \\\"quoted\\\" \\\\ subject\" NIL))\r\n",
	    "untagged number=1 keyword=FETCH args=[(a:\"ENVELOPE\" (NIL \"a \\\"quoted\\\" \\\\ subject\" NIL))]"),
	OKC("FETCH header fields", "* 2 FETCH (UID 7 BODY[HEADER.FIELDS (MESSAGE-ID)]<0> {21}\r\nMessage-ID: <x@y>\r\n\r\n)\r\n",
	    "untagged number=2 keyword=FETCH args=[(a:\"UID\" a:\"7\" a:\"BODY[HEADER.FIELDS (MESSAGE-ID)]<0>\" {21}\"Message-ID: <x@y>\\x0d\\x0a\\x0d\\x0a\")]"),
	OKC("FETCH header", "* 2 FETCH (BODY[HEADER] {4}\r\na\0\r\n UID 9)\r\n",
	    "untagged number=2 keyword=FETCH args=[(a:\"BODY[HEADER]\" {4}\"a\\x00\\x0d\\x0a\" a:\"UID\" a:\"9\")]"),
	OKC("FETCH header NIL", "* 2 FETCH (BODY[HEADER] NIL)\r\n",
	    "untagged number=2 keyword=FETCH args=[(a:\"BODY[HEADER]\" NIL)]"),
	OKC("FETCH nested brackets in section", "* 3 FETCH (BODY[HEADER.FIELDS (\"X-[a]\" \"Y)\")] \"\")\r\n",
	    "untagged number=3 keyword=FETCH args=[(a:\"BODY[HEADER.FIELDS (\\\"X-[a]\\\" \\\"Y)\\\")]\" \"\")]"),
	{ "FETCH body streamed", IN("* 5 FETCH (UID 10 BODY[] {11}\r\nHello\r\nBody)\r\n"),
	  "untagged number=5 keyword=FETCH args=[(a:\"UID\" a:\"10\" a:\"BODY[]\" {11 streamed})]", 1,
	  "<5 BODY[] 11:Hello\\x0d\\x0aBody>", L_DEFAULT, 0 },
	{ "FETCH body before uid", IN("* 5 FETCH (BODY[] {3}\r\nabc UID 10)\r\n"),
	  "untagged number=5 keyword=FETCH args=[(a:\"BODY[]\" {3 streamed} a:\"UID\" a:\"10\")]", 1,
	  "<5 BODY[] 3:abc>", L_DEFAULT, 0 },
	{ "FETCH body NUL", IN("* 5 FETCH (BODY[] {3}\r\na\0b)\r\n"),
	  "untagged number=5 keyword=FETCH args=[(a:\"BODY[]\" {3 streamed})]", 1,
	  "<5 BODY[] 3:a\\x00b>", L_DEFAULT, 0 },
	{ "FETCH body empty", IN("* 5 FETCH (BODY[] {0}\r\n)\r\n"),
	  "untagged number=5 keyword=FETCH args=[(a:\"BODY[]\" {0 streamed})]", 1,
	  "<5 BODY[] 0:>", L_DEFAULT, 0 },
	{ "FETCH body quoted", IN("* 5 FETCH (BODY[TEXT] \"hi\\\"\")\r\n"),
	  "untagged number=5 keyword=FETCH args=[(a:\"BODY[TEXT]\" {3 streamed})]", 1,
	  "<5 BODY[TEXT] 3:hi\">", L_DEFAULT, 0 },
	{ "FETCH body partial", IN("* 6 FETCH (BODY[]<100> {2}\r\nxy)\r\n"),
	  "untagged number=6 keyword=FETCH args=[(a:\"BODY[]<100>\" {2 streamed})]", 1,
	  "<6 BODY[]<100> 2:xy>", L_DEFAULT, 0 },
	{ "FETCH binary literal", IN("* 7 FETCH (BINARY[] ~{3}\r\n\0\1\2)\r\n"),
	  "untagged number=7 keyword=FETCH args=[(a:\"BINARY[]\" {3 streamed})]", 1,
	  "<7 BINARY[] 3:\\x00\\x01\\x02>", L_DEFAULT, 0 },
	{ "FETCH RFC822", IN("* 8 FETCH (RFC822 {2}\r\nab FLAGS ())\r\n"),
	  "untagged number=8 keyword=FETCH args=[(a:\"RFC822\" {2 streamed} a:\"FLAGS\" ())]", 1,
	  "<8 RFC822 2:ab>", L_DEFAULT, 0 },
	{ "FETCH BODY.PEEK", IN("* 8 FETCH (BODY.PEEK[1.2] {1}\r\nz)\r\n"),
	  "untagged number=8 keyword=FETCH args=[(a:\"BODY.PEEK[1.2]\" {1 streamed})]", 1,
	  "<8 BODY.PEEK[1.2] 1:z>", L_DEFAULT, 0 },
	{ "FETCH two bodies", IN("* 9 FETCH (BODY[1] {1}\r\na BODY[2] {2}\r\nbc)\r\n"),
	  "untagged number=9 keyword=FETCH args=[(a:\"BODY[1]\" {1 streamed} a:\"BODY[2]\" {2 streamed})]", 1,
	  "<9 BODY[1] 1:a><9 BODY[2] 2:bc>", L_DEFAULT, 0 },
	{ "FETCH body CRLF inside", IN("* 9 FETCH (BODY[] {5}\r\n)\r\n\r\n)\r\n"),
	  "untagged number=9 keyword=FETCH args=[(a:\"BODY[]\" {5 streamed})]", 1,
	  "<9 BODY[] 5:)\\x0d\\x0a\\x0d\\x0a>", L_DEFAULT, 0 },
	OKC("FETCH body NIL", "* 9 FETCH (BODY[] NIL UID 3)\r\n",
	    "untagged number=9 keyword=FETCH args=[(a:\"BODY[]\" NIL a:\"UID\" a:\"3\")]"),
	OKC("FETCH binary size", "* 9 FETCH (BINARY.SIZE[1] 1234)\r\n",
	    "untagged number=9 keyword=FETCH args=[(a:\"BINARY.SIZE[1]\" a:\"1234\")]"),
	OKC("FETCH bodystructure literal not streamed", "* 9 FETCH (BODYSTRUCTURE (\"TEXT\" {5}\r\nPLAIN NIL))\r\n",
	    "untagged number=9 keyword=FETCH args=[(a:\"BODYSTRUCTURE\" (\"TEXT\" {5}\"PLAIN\" NIL))]"),
	OKC("FETCH RFC822.HEADER in memory", "* 9 FETCH (RFC822.HEADER {3}\r\na:b)\r\n",
	    "untagged number=9 keyword=FETCH args=[(a:\"RFC822.HEADER\" {3}\"a:b\")]"),
	OKC("non-FETCH literal not streamed", "* 9 XFOO (BODY[] {3}\r\nabc)\r\n",
	    "untagged number=9 keyword=XFOO args=[(a:\"BODY[]\" {3}\"abc\")]"),
	OKC("nested lists", "* XLIST ((a (b (c))) () d)\r\n",
	    "untagged keyword=XLIST args=[((a:\"a\" (a:\"b\" (a:\"c\"))) () a:\"d\")]"),
	OKC("list trailing space", "* XLIST (a )\r\n", "untagged keyword=XLIST args=[(a:\"a\")]"),
	OKC("ID with NIL values", "* ID (\"name\" \"Dovecot\" \"x\" NIL)\r\n",
	    "untagged keyword=ID args=[(\"name\" \"Dovecot\" \"x\" NIL)]"),
	OKC("nil case", "* XNIL nil Nil NILS\r\n", "untagged keyword=XNIL args=[NIL NIL a:\"NILS\"]"),
	OKC("empty string", "* XS \"\"\r\n", "untagged keyword=XS args=[\"\"]"),
	OKC("quoted escaped other", "* XS \"a\\b\"\r\n", "untagged keyword=XS args=[\"ab\"]"),
	OKC("quoted UTF-8", "* XS \"\xe2\x82\xac\"\r\n", "untagged keyword=XS args=[\"\\xe2\\x82\\xac\"]"),
	OKC("empty literal", "* XS {0}\r\n\r\n", "untagged keyword=XS args=[{0}\"\"]"),
	OKC("literal CRLF and NUL", "* XS {4}\r\n\0\r\n\0 x\r\n", "untagged keyword=XS args=[{4}\"\\x00\\x0d\\x0a\\x00\" a:\"x\"]"),
	OKC("literal looks like a response", "* XS {11}\r\n* OK done\r\n\r\n", "untagged keyword=XS args=[{11}\"* OK done\\x0d\\x0a\"]"),
	OKC("atom starting with ]", "* XS ]a[b\r\n", "untagged keyword=XS args=[a:\"]a[b\"]"),
	OKC("keyword FLAGS with \\* and trailing space", "* 3 FETCH (FLAGS (\\Seen) UID 4 )\r\n",
	    "untagged number=3 keyword=FETCH args=[(a:\"FLAGS\" (a:\"\\\\Seen\") a:\"UID\" a:\"4\")]"),
	OKC("literal leading zeros", "* XS {003}\r\nabc\r\n", "untagged keyword=XS args=[{3}\"abc\"]"),
	OKC("tag with dots", "A.b-1_2 OK x\r\n", "tagged A.b-1_2 status=OK keyword=OK text=\"x\""),

	/* --- errors --- */
	ERR("empty line", "\r\n", "unexpected CR at start of response"),
	ERR("star without space", "*OK\r\n", "unexpected 'O' after '*'"),
	ERR("star then CRLF", "* \r\n", "unexpected CR at start of word"),
	ERR("tag without status", "a1\r\n", "unexpected CR after tag"),
	ERR("tagged data", "a1 FETCH x\r\n", "tagged response with 'FETCH'"),
	ERR("tagged BYE", "a1 BYE x\r\n", "tagged response with 'BYE'"),
	ERR("number without keyword", "* 23\r\n", "missing keyword after number 23"),
	ERR("number too big", "* 4294967296 EXISTS\r\n", "out of range"),
	ERR("bare LF", "* OK hi\n", "LF without CR"),
	ERR("bare LF after data", "* SEARCH 1\n", "unexpected LF after argument"),
	ERR("CR without LF", "* OK hi\rx", "CR not followed by LF"),
	ERR("NUL in text", "* OK h\0i\r\n", "NUL byte outside a literal"),
	ERR("NUL in quoted", "* XS \"a\0\"\r\n", "NUL byte outside a literal"),
	ERR("unterminated quoted", "* XS \"abc\r\n", "unterminated quoted string"),
	ERR("unterminated escape", "* XS \"abc\\\r\n", "unterminated quoted string"),
	ERR("garbage after list", "* XS (a b)c\r\n", "unexpected 'c' after argument"),
	ERR("quote after atom", "* XS ab\"c\"\r\n", "unexpected '\"' after argument"),
	ERR("list after atom", "* XS a(b)\r\n", "unexpected '(' after argument"),
	ERR("unbalanced close", "* XS a)\r\n", "unexpected ')'"),
	ERR("unterminated list", "* XS (a b\r\n", "unterminated list"),
	ERR("double space", "* XS a  b\r\n", "double space"),
	ERR("bad literal syntax", "* XS {12a}\r\n", "unexpected 'a' in literal size"),
	ERR("literal plus", "* XS {3+}\r\nabc\r\n", "unexpected '+' in literal size"),
	ERR("empty literal size", "* XS {}\r\n", "literal without a size"),
	ERR("literal no CRLF", "* XS {3}abc\r\n", "literal size not followed by CRLF"),
	ERR("literal CR only", "* XS {3}\rabc\r\n", "literal size not followed by CRLF"),
	ERR("literal overflow", "* XS {99999999999999999999999}\r\n", "literal size overflows"),
	ERR("literal too big", "* XS {9999999999}\r\n", "literal of 9999999999 bytes exceeds limit of 1048576 bytes"),
	ERR("body too big", "* 1 FETCH (BODY[] {99999999999}\r\n", "body literal of 99999999999 bytes exceeds limit of 1073741824 bytes"),
	ERRL("literal over tiny limit", "* XS {9}\r\n", "literal of 9 bytes exceeds limit of 8 bytes", L_TINY),
	ERRL("literals of one response add up", "* XS {4}\r\nabcd {4}\r\nabcd {1}\r\n",
	     "literal of 1 bytes exceeds limit of 8 bytes (8 already used", L_TINY),
	ERRL("body over tiny limit", "* 1 FETCH (BODY[] {17}\r\n", "body literal of 17 bytes exceeds limit of 16 bytes", L_TINY),
	ERRL("header over literal limit", "* 1 FETCH (BODY[HEADER] {9}\r\n", "literal of 9 bytes exceeds limit of 8 bytes", L_TINY),
	ERRL("quoted body over limit", "* 1 FETCH (BODY[] \"0123456789abcdefg\")\r\n", "body of 17 bytes exceeds limit of 16 bytes", L_TINY),
	ERRL("overlong line", "* OK 0123456789012345678901234567890123456789\r\n", "response exceeds 40 bytes outside literals", L_TINY),
	ERRL("overlong line with literal", "* XS {8}\r\n01234567 0123456789012345678901234567890\r\n", "response exceeds 40 bytes", L_TINY),
	ERRL("too deep", "* XS (((a)))\r\n", "lists nested deeper than 2 levels", L_DEPTH2),
	ERRL("too deep in code", "* OK [BADCHARSET (((a)))] x\r\n", "lists nested deeper than 2 levels", L_DEPTH2),
	ERRL("too many args", "* XS 1 2 3 4 5 6\r\n", "response has more than 5 arguments", L_ARGS5),
	ERRL("too many nested args", "* XS (1 (2)) (3 4)\r\n", "response has more than 5 arguments", L_ARGS5),
	ERR("unterminated code", "* OK [ALERT\r\n", "unexpected CR in response code"),
	ERR("unterminated raw code", "* OK [X-FOO bar\r\n", "unterminated response code"),
	ERR("unterminated code args", "* OK [CAPABILITY IMAP4rev1\r\n", "unterminated response code"),
	ERR("empty code", "* OK [] x\r\n", "empty response code"),
	ERR("code list unterminated", "* OK [PERMANENTFLAGS (\\Seen] x\r\n", "unterminated list in response code"),
	ERR("literal in code", "* OK [CAPABILITY {3}\r\nabc] x\r\n", "literal in response code"),
	ERR("bad UIDVALIDITY", "* OK [UIDVALIDITY x] x\r\n", "malformed UIDVALIDITY response code"),
	ERR("UIDVALIDITY too big", "* OK [UIDVALIDITY 4294967296] x\r\n", "malformed UIDVALIDITY"),
	ERR("UIDNEXT missing", "* OK [UIDNEXT] x\r\n", "malformed UIDNEXT"),
	ERR("bad APPENDUID", "a OK [APPENDUID 1 *] x\r\n", "malformed APPENDUID"),
	ERR("bad COPYUID", "a OK [COPYUID 1 2] x\r\n", "malformed COPYUID"),
	ERR("bad PERMANENTFLAGS", "* OK [PERMANENTFLAGS \\Seen] x\r\n", "malformed PERMANENTFLAGS"),
	ERR("unterminated section", "* 1 FETCH (BODY[HEADER.FIELDS (A)\r\n", "unterminated section"),
	ERR("control char", "* XS a\x01" "b\r\n", "unexpected 0x01 after argument"),
	ERR("bad plus", "+x\r\n", "unexpected 'x' after status"),
	ERR("bad first byte", "(\r\n", "unexpected '(' at start of response"),
	ERR("status garbage", "a1 OK(\r\n", "unexpected '(' after status"),
	{ "sink fails at begin", IN("* 1 FETCH (BODY[] {3}\r\nabc)\r\n"), "body sink failed", -1,
	  "<1 BODY[] 3:", L_DEFAULT, 1 },
	{ "sink fails at data", IN("* 1 FETCH (BODY[] {1}\r\na)\r\n"), "body sink failed", -1,
	  "<1 BODY[] 1:a", L_DEFAULT, 2 },
	{ "sink fails at end", IN("* 1 FETCH (BODY[] {1}\r\na)\r\n"), "body sink failed", -1,
	  "<1 BODY[] 1:a>", L_DEFAULT, 3 },
};

static void run_case(const struct pcase *c)
{
	size_t len = c->len;
	struct outcome whole, bytes;
	const char *want_sink = c->sink ? c->sink : "";

	run(c->in, len, c->lim, c->fail_at, 0, &whole);
	run(c->in, len, c->lim, c->fail_at, 1, &bytes);

	if (c->ret > 0) {
		if (!ok(whole.ret == 1 && strcmp(whole.dump, c->want) == 0 &&
			whole.consumed == len,
			"%s: whole", c->name))
			printf("#   ret %d consumed %zu/%zu\n#   got  %s\n#   want %s\n",
			       whole.ret, whole.consumed, len, whole.dump, c->want);
	} else {
		if (!ok(whole.ret == -1 && strstr(whole.dump, c->want) != NULL,
			"%s: whole fails", c->name))
			printf("#   ret %d, got '%s', want '%s'\n", whole.ret,
			       whole.dump, c->want);
	}
	if (!ok(bytes.ret == whole.ret && strcmp(bytes.dump, whole.dump) == 0 &&
		bytes.consumed == whole.consumed,
		"%s: byte by byte gives the same", c->name))
		printf("#   ret %d consumed %zu (whole %zu)\n#   got  %s\n",
		       bytes.ret, bytes.consumed, whole.consumed, bytes.dump);
	if (c->ret > 0)
		ok(!bytes.early, "%s: need more until the last byte", c->name);
	if (!ok(strcmp(whole.sink, want_sink) == 0 && strcmp(bytes.sink, want_sink) == 0,
		"%s: sink", c->name))
		printf("#   whole '%s'\n#   bytes '%s'\n#   want  '%s'\n",
		       whole.sink, bytes.sink, want_sink);
	outcome_free(&whole);
	outcome_free(&bytes);
}

/* ---- several responses in one buffer ---- */

static void test_pipeline(void)
{
	static const char in[] =
		"* 1 EXISTS\r\n"
		"* 1 FETCH (BODY[] {5}\r\nhello UID 4)\r\n"
		"+ go\r\n"
		"a1 OK [UIDNEXT 5] done\r\n"
		"* 2 EX";
	static const char *const want[] = {
		"untagged number=1 keyword=EXISTS args=[]",
		"untagged number=1 keyword=FETCH args=[(a:\"BODY[]\" {5 streamed} a:\"UID\" a:\"4\")]",
		"continuation text=\"go\" args=[]",
		"tagged a1 status=OK keyword=OK code=UIDNEXT/5 num=5 code-args=[a:\"5\"] text=\"done\"",
	};
	static const size_t ends[] = { 12, 49, 55, 79 };
	struct imap_parser *p = imap_parser_new(NULL);
	struct rec r;
	struct imap_body_sink sink = { rec_begin, rec_data, rec_end, &r };
	const struct imap_response *resp;
	size_t pos = 0, consumed, i;
	int ret;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log, BUF_MAX_UNLIMITED);
	imap_parser_set_body_sink(p, &sink);
	for (i = 0; i < N_ELEMENTS(want); i++) {
		char *d;

		ret = imap_parser_feed(p, in + pos, sizeof(in) - 1 - pos, &consumed, &resp);
		pos += consumed;
		is_int(ret, 1, "pipeline response %zu parsed", i);
		is_int(pos, ends[i], "pipeline response %zu consumed up to its end", i);
		if (ret != 1)
			break;
		d = imap_response_dump(resp);
		is_str(d, want[i], "pipeline response %zu dump", i);
		free(d);
	}
	ret = imap_parser_feed(p, in + pos, sizeof(in) - 1 - pos, &consumed, &resp);
	is_int(ret, 0, "pipeline: partial last response needs more");
	is_int(consumed, 6, "pipeline: partial bytes consumed");
	ret = imap_parser_feed(p, "ISTS\r\n", 6, &consumed, &resp);
	is_int(ret, 1, "pipeline: completed by the next feed");
	is_int(resp->number, 2, "pipeline: number of the completed response");
	is_str(r.log.data, "<1 BODY[] 5:hello>", "pipeline: sink");
	ret = imap_parser_feed(p, "", 0, &consumed, &resp);
	is_int(ret, 0, "empty feed needs more");
	imap_parser_free(&p);
	buf_release(&r.log);
}

/* ---- a big body in random chunks: exact bytes, bounded memory ---- */

struct cksum {
	uint64_t n, sum;
	int begins, ends;
};

static int ck_begin(void *ctx, uint32_t seq ATTR_UNUSED, const char *s ATTR_UNUSED,
		    uint64_t size ATTR_UNUSED)
{
	((struct cksum *)ctx)->begins++;
	return 0;
}

static int ck_data(void *ctx, const void *p, size_t n)
{
	struct cksum *c = ctx;
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		c->sum = c->sum * 31 + s[i] + c->n;
		c->n++;
	}
	return 0;
}

static int ck_end(void *ctx)
{
	((struct cksum *)ctx)->ends++;
	return 0;
}

static void test_big_body(void)
{
	const size_t body = 30 * 1024 * 1024;
	struct imap_parser_limits l;
	struct imap_parser *p;
	struct cksum got, want;
	struct imap_body_sink sink = { ck_begin, ck_data, ck_end, &got };
	const struct imap_response *resp = NULL;
	char head[80], chunk[65536];
	size_t hl, pos = 0, consumed, i;
	uint32_t seed = 7;
	int ret = 0;
	bool steady = true;

	memset(&got, 0, sizeof(got));
	memset(&want, 0, sizeof(want));
	imap_parser_limits_default(&l);
	l.max_line = 1000;
	l.max_literal = 100;
	p = imap_parser_new(&l);
	imap_parser_set_body_sink(p, &sink);
	hl = (size_t)snprintf(head, sizeof(head), "* 3 FETCH (UID 9 BODY[] {%zu}\r\n", body);
	ret = imap_parser_feed(p, head, hl, &consumed, &resp);
	ok(ret == 0 && consumed == hl, "big body: header accepted");
	while (pos < body) {
		size_t n = 1 + (seed = seed * 1103515245 + 12345) % sizeof(chunk);

		if (n > body - pos)
			n = body - pos;
		for (i = 0; i < n; i++)
			chunk[i] = (char)((pos + i) * 7 % 251);
		ck_data(&want, chunk, n);
		ret = imap_parser_feed(p, chunk, n, &consumed, &resp);
		if (ret != 0 || consumed != n)
			steady = false;
		pos += n;
	}
	ok(steady, "big body: every chunk consumed, need more");
	ok(imap_parser_mem_used(p) < 32 * 1024, "big body: parser holds %zu bytes",
	   imap_parser_mem_used(p));
	ret = imap_parser_feed(p, " FLAGS (\\Seen))\r\n", 17, &consumed, &resp);
	is_int(ret, 1, "big body: response complete");
	ok(got.n == body && got.sum == want.sum && got.begins == 1 && got.ends == 1,
	   "big body: sink got exactly the %zu bytes once", body);
	if (ret == 1) {
		struct imap_fetch f;
		const char *err = NULL;

		ok(imap_response_fetch(resp, &f, &err) == 0 && f.uid == 9 &&
		   f.has_body && f.body_size == body && f.has_flags &&
		   f.flags == MF_SEEN, "big body: interpreted");
	}
	imap_parser_free(&p);
}

/* ---- interpreters ---- */

static const struct imap_response *parse1(struct imap_parser *p, const char *s)
{
	const struct imap_response *resp = NULL;
	size_t consumed;

	if (imap_parser_feed(p, s, strlen(s), &consumed, &resp) != 1) {
		printf("# parse failed: %s\n", imap_parser_error(p));
		return NULL;
	}
	return resp;
}

static void test_fetch(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	struct imap_fetch f;
	const char *err = NULL;

	r = parse1(p, "* 12 FETCH (UID 100 FLAGS (\\Seen \\Answered \\Draft \\Flagged "
		   "\\Deleted $Forwarded $Junk \\Recent) MODSEQ (12121231000) "
		   "RFC822.SIZE 44827 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
		   "EMAILID (M6d99ac3275bb4e) BODY[HEADER.FIELDS (MESSAGE-ID)] {8}\r\nM: <x>\r\n "
		   "X-UNKNOWN (a b) BODY[] {3}\r\nabc)\r\n");
	ok(r != NULL && imap_response_fetch(r, &f, &err) == 0, "fetch: all items");
	is_int(f.seq, 12, "fetch: seq");
	is_int(f.uid, 100, "fetch: uid");
	ok(f.has_flags && f.flags == (MF_SEEN | MF_ANSWERED | MF_DRAFT | MF_FLAGGED |
				      MF_DELETED | MF_FORWARDED), "fetch: flags");
	ok(f.has_modseq && f.modseq == 12121231000ULL, "fetch: modseq");
	ok(f.has_size && f.size == 44827, "fetch: size");
	ok(f.has_date && f.internaldate == 837596665, "fetch: internaldate honours zone (%lld)",
	   (long long)f.internaldate);
	is_str(f.emailid, "M6d99ac3275bb4e", "fetch: emailid");
	ok(f.header != NULL && f.header_len == 8 && memcmp(f.header, "M: <x>\r\n", 8) == 0,
	   "fetch: header in memory");
	ok(f.has_body && f.body_size == 3, "fetch: streamed body size");

	r = parse1(p, "* 1 FETCH (FLAGS ())\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && f.has_flags && f.flags == 0 &&
	   f.uid == 0 && !f.has_modseq && f.emailid == NULL && f.header == NULL,
	   "fetch: empty flags, nothing else");
	r = parse1(p, "* 1 FETCH (INTERNALDATE \" 1-Jan-1970 00:00:00 +0000\" MODSEQ 5)\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && f.internaldate == 0 &&
	   f.modseq == 5, "fetch: epoch with space-padded day, bare MODSEQ");
	r = parse1(p, "* 1 FETCH (INTERNALDATE \"29-Feb-2024 23:59:59 +1400\")\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && f.internaldate == 1709251199 - 14 * 3600,
	   "fetch: leap day, eastern zone");
	r = parse1(p, "* 1 FETCH (INTERNALDATE \"1-Mar-1900 12:00:00 -0130\")\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 &&
	   f.internaldate == -2203891200LL + 12 * 3600 + 5400,
	   "fetch: single-digit day, before 1970");
	/* Gmail's message id, as in its IMAP extensions page: the same
	 * in every label folder */
	r = parse1(p, "* 1 FETCH (X-GM-MSGID 1278455344230334865 UID 4)\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && f.has_gm_msgid &&
	   f.gm_msgid == UINT64_C(1278455344230334865) && f.uid == 4,
	   "fetch: X-GM-MSGID");
	r = parse1(p, "* 1 FETCH (X-GM-MSGID 18446744073709551615)\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 &&
	   f.gm_msgid == UINT64_MAX, "fetch: X-GM-MSGID, all 64 bits");
	r = parse1(p, "* 1 FETCH (UID 4)\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && !f.has_gm_msgid,
	   "fetch: no X-GM-MSGID");
	r = parse1(p, "* 1 FETCH (BODY[HEADER] NIL)\r\n");
	ok(r && imap_response_fetch(r, &f, &err) == 0 && f.header == NULL, "fetch: NIL header");

	static const char *const bad[] = {
		"* 1 FETCH (UID 0)\r\n",
		"* 1 FETCH (UID 4294967296)\r\n",
		"* 1 FETCH (UID)\r\n",
		"* 1 FETCH (UID \"5\")\r\n",
		"* 1 FETCH (FLAGS \\Seen)\r\n",
		"* 1 FETCH (FLAGS (\"x\"))\r\n",
		"* 1 FETCH (MODSEQ (1 2))\r\n",
		"* 1 FETCH (MODSEQ (9223372036854775808))\r\n",
		"* 1 FETCH (RFC822.SIZE x)\r\n",
		"* 1 FETCH (INTERNALDATE \"32-Jan-2000 00:00:00 +0000\")\r\n",
		"* 1 FETCH (INTERNALDATE \"29-Feb-2023 00:00:00 +0000\")\r\n",
		"* 1 FETCH (INTERNALDATE \"1-Foo-2000 00:00:00 +0000\")\r\n",
		"* 1 FETCH (INTERNALDATE \"1-Jan-2000 24:00:00 +0000\")\r\n",
		"* 1 FETCH (INTERNALDATE \"1-Jan-2000 00:00:00 0000\")\r\n",
		"* 1 FETCH (INTERNALDATE \"1-Jan-2000 00:00:00 +0000 \")\r\n",
		"* 1 FETCH (INTERNALDATE NIL)\r\n",
		"* 1 FETCH (EMAILID ())\r\n",
		"* 1 FETCH (EMAILID NIL)\r\n",
		"* 1 FETCH (X-GM-MSGID 0)\r\n",
		"* 1 FETCH (X-GM-MSGID 18446744073709551616)\r\n",
		"* 1 FETCH (X-GM-MSGID \"12\")\r\n",
		"* 1 FETCH (X-GM-MSGID NIL)\r\n",
		"* 1 FETCH (UID 1 FLAGS)\r\n",
		"* 1 FETCH UID 1\r\n",
		"* 1 FETCH (\"UID\" 1)\r\n",
		"* 1 FETCH (BODY[HEADER] (a))\r\n",
		"* FETCH (UID 1)\r\n",
		"* 1 EXISTS\r\n",
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		err = NULL;
		r = parse1(p, bad[i]);
		int rc = r ? imap_response_fetch(r, &f, &err) : 0;

		ok(rc == -1 && err != NULL,
		   "fetch rejects %.*s (%s)", (int)strlen(bad[i]) - 2, bad[i],
		   err ? err : "accepted");
	}
	imap_parser_free(&p);
}

static void test_list(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	struct imap_list l;
	const char *err = NULL;

	r = parse1(p, "* LIST (\\HasNoChildren \\Sent \\Marked) \"/\" \"Sent Items\"\r\n");
	ok(r && imap_response_list(r, &l, &err) == 0 &&
	   l.attrs == (IMAP_LIST_HASNOCHILDREN | IMAP_LIST_SENT | IMAP_LIST_MARKED) &&
	   l.delimiter == '/' && l.name_len == 10 && strcmp(l.name, "Sent Items") == 0,
	   "list: special-use");
	is_str(imap_list_special_use(l.attrs), "\\Sent", "list: special-use name");
	is_str(imap_list_special_use(IMAP_LIST_HASCHILDREN), "", "list: no special-use");
	r = parse1(p, "* LIST (\\noselect \\HASCHILDREN \\All \\Archive \\Drafts \\Flagged \\Junk \\Trash "
		   "\\NoInferiors \\NonExistent \\Unmarked \\Subscribed \\X-Other) NIL INBOX\r\n");
	ok(r && imap_response_list(r, &l, &err) == 0 &&
	   l.attrs == (IMAP_LIST_NOSELECT | IMAP_LIST_HASCHILDREN | IMAP_LIST_ALL |
		       IMAP_LIST_ARCHIVE | IMAP_LIST_DRAFTS | IMAP_LIST_FLAGGED |
		       IMAP_LIST_JUNK | IMAP_LIST_TRASH | IMAP_LIST_NOINFERIORS |
		       IMAP_LIST_NONEXISTENT | IMAP_LIST_UNMARKED | IMAP_LIST_SUBSCRIBED) &&
	   l.delimiter == 0 && strcmp(l.name, "INBOX") == 0,
	   "list: every attribute, case-insensitive, NIL delimiter");
	r = parse1(p, "* LIST () \"\\\\\" {5}\r\nA\\B C (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
	ok(r && imap_response_list(r, &l, &err) == 0 && l.delimiter == '\\' &&
	   strcmp(l.name, "A\\B C") == 0, "list: literal name, extended items skipped");
	r = parse1(p, "* LSUB () \".\" &U,BTFw-\r\n");
	ok(r && imap_response_list(r, &l, &err) == 0 && strcmp(l.name, "&U,BTFw-") == 0,
	   "lsub: atom name kept as on the wire");

	static const char *const bad[] = {
		"* LIST () \"/\"\r\n",
		"* LIST \\Noselect \"/\" x\r\n",
		"* LIST ((a)) \"/\" x\r\n",
		"* LIST () \"//\" x\r\n",
		"* LIST () \"\" x\r\n",
		"* LIST () \"/\" \"\"\r\n",
		"* LIST () NIL\r\n",
		"* LIST () \"/\" (x)\r\n",
		"* STATUS x ()\r\n",
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		err = NULL;
		r = parse1(p, bad[i]);
		int rc = r ? imap_response_list(r, &l, &err) : 0;

		ok(rc == -1 && err != NULL,
		   "list rejects case %zu (%s)", i, err ? err : "accepted");
	}
	{
		static const char nul[] = "* LIST () \"/\" {3}\r\na\0b\r\n";
		size_t consumed;

		err = NULL;
		ok(imap_parser_feed(p, nul, sizeof(nul) - 1, &consumed, &r) == 1 &&
		   consumed == sizeof(nul) - 1 && r->args[2].type == IMAP_ARG_LITERAL &&
		   imap_response_list(r, &l, &err) == -1 && err != NULL,
		   "list rejects a name with NUL (%s)", err ? err : "accepted");
	}
	imap_parser_free(&p);
}

static void test_status(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	struct imap_status_data s;
	const char *err = NULL;

	r = parse1(p, "* STATUS \"Sent Items\" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 4000000000 "
		   "UNSEEN 3 HIGHESTMODSEQ 7011231777 RECENT 0 SIZE 123 APPENDLIMIT NIL)\r\n");
	ok(r && imap_response_status(r, &s, &err) == 0 &&
	   strcmp(s.mailbox, "Sent Items") == 0 && s.mailbox_len == 10 &&
	   s.has_messages && s.messages == 231 && s.has_uidnext && s.uidnext == 44292 &&
	   s.has_uidvalidity && s.uidvalidity == 4000000000u && s.has_unseen &&
	   s.unseen == 3 && s.has_highestmodseq && s.highestmodseq == 7011231777ULL,
	   "status: all items");
	r = parse1(p, "* STATUS INBOX (MESSAGES 0)\r\n");
	ok(r && imap_response_status(r, &s, &err) == 0 && s.has_messages &&
	   !s.has_uidnext && !s.has_highestmodseq, "status: one item");
	static const char *const bad[] = {
		"* STATUS INBOX\r\n",
		"* STATUS INBOX (MESSAGES)\r\n",
		"* STATUS INBOX (MESSAGES x)\r\n",
		"* STATUS INBOX (UIDNEXT 4294967296)\r\n",
		"* STATUS (MESSAGES 1) INBOX\r\n",
		"* STATUS INBOX (MESSAGES 1) x\r\n",
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		err = NULL;
		r = parse1(p, bad[i]);
		int rc = r ? imap_response_status(r, &s, &err) : 0;

		ok(rc == -1 && err != NULL,
		   "status rejects case %zu (%s)", i, err ? err : "accepted");
	}
	imap_parser_free(&p);
}

static void test_vanished_esearch(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	struct imap_esearch e;
	const char *err = NULL, *set = NULL;
	bool earlier = false;

	r = parse1(p, "* VANISHED (EARLIER) 41,43:116\r\n");
	ok(r && imap_response_vanished(r, &earlier, &set, &err) == 0 && earlier &&
	   strcmp(set, "41,43:116") == 0, "vanished earlier");
	r = parse1(p, "* VANISHED 405\r\n");
	ok(r && imap_response_vanished(r, &earlier, &set, &err) == 0 && !earlier &&
	   strcmp(set, "405") == 0, "vanished");
	r = parse1(p, "* VANISHED (LATER) 4\r\n");
	ok(r && imap_response_vanished(r, &earlier, &set, &err) == -1, "vanished: bad modifier");
	r = parse1(p, "* VANISHED 4:*\r\n");
	ok(r && imap_response_vanished(r, &earlier, &set, &err) == -1, "vanished: '*' rejected");
	r = parse1(p, "* VANISHED\r\n");
	ok(r && imap_response_vanished(r, &earlier, &set, &err) == -1, "vanished: no set");

	r = parse1(p, "* ESEARCH (TAG \"a567\") UID ALL 4:18,21,28 COUNT 17 MIN 4 MAX 28 MODSEQ 5\r\n");
	ok(r && imap_response_esearch(r, &e, &err) == 0 && strcmp(e.tag, "a567") == 0 &&
	   e.uid && strcmp(e.all, "4:18,21,28") == 0 && e.has_count && e.count == 17 &&
	   e.has_min && e.min == 4 && e.has_max && e.max == 28, "esearch: everything");
	r = parse1(p, "* ESEARCH (TAG \"x\")\r\n");
	ok(r && imap_response_esearch(r, &e, &err) == 0 && !e.uid && e.all == NULL &&
	   !e.has_count, "esearch: no results");
	r = parse1(p, "* ESEARCH COUNT 0\r\n");
	ok(r && imap_response_esearch(r, &e, &err) == 0 && e.tag == NULL && e.has_count &&
	   e.count == 0, "esearch: no correlator");
	static const char *const bad[] = {
		"* ESEARCH (TAG) UID\r\n",
		"* ESEARCH (FOO \"x\")\r\n",
		"* ESEARCH UID ALL\r\n",
		"* ESEARCH UID ALL 1:x\r\n",
		"* ESEARCH COUNT -1\r\n",
		"* ESEARCH (TAG \"x\") (TAG \"y\")\r\n",
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		err = NULL;
		r = parse1(p, bad[i]);
		int rc = r ? imap_response_esearch(r, &e, &err) : 0;

		ok(rc == -1 && err != NULL,
		   "esearch rejects case %zu (%s)", i, err ? err : "accepted");
	}
	imap_parser_free(&p);
}

static void uidset_str(const char *set, char *out, size_t size)
{
	size_t pos = 0, o = 0;
	uint32_t lo, hi;
	bool bad = false;

	out[0] = '\0';
	while (imap_uidset_next(set, &pos, &lo, &hi, &bad))
		o += (size_t)snprintf(out + o, size - o, "[%u-%u]", lo, hi);
	if (bad)
		snprintf(out + o, size - o, "BAD");
}

static void test_uidset(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "1:3,7,9:12", "[1-3][7-7][9-12]" },
		{ "12:9", "[9-12]" },
		{ "4294967295", "[4294967295-4294967295]" },
		{ "5", "[5-5]" },
		{ "", "BAD" },
		{ "1,", "[1-1]BAD" },
		{ ",1", "BAD" },
		{ "1:*", "BAD" },
		{ "0", "BAD" },
		{ "4294967296", "BAD" },
		{ "1::2", "BAD" },
		{ "1:2:3", "BAD" },
		{ "1 2", "BAD" },
		{ "a", "BAD" },
	};
	char out[200];
	size_t i;

	for (i = 0; i < N_ELEMENTS(t); i++) {
		uidset_str(t[i].in, out, sizeof(out));
		is_str(out, t[i].want, "uidset '%s'", t[i].in);
	}
}

static void test_uidset_expand(void)
{
	uint32_t out[8];

	is_int(imap_uidset_expand("3:5,9,4294967295", out, 8), 5,
	       "uidset expand: how many");
	ok(out[0] == 3 && out[1] == 4 && out[2] == 5 && out[3] == 9 &&
	   out[4] == 4294967295u, "uidset expand: in the set's order");
	is_int(imap_uidset_expand("1:100", out, 3), 3,
	       "uidset expand: stops at max");
	ok(out[2] == 3, "uidset expand: the first max of a range");
	is_int(imap_uidset_expand("1,x", out, 8), 0,
	       "uidset expand: a malformed set gives 0");
	is_int(imap_uidset_expand("", out, 8), 0,
	       "uidset expand: an empty set gives 0");
}

static void test_accessors(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	const struct imap_arg *l;
	const char *s = "unchanged";
	size_t len = 99, n;
	uint64_t num = 7;

	r = parse1(p, "* X 123 \"q\" {2}\r\nab NIL (a) 18446744073709551615 007 uid\r\n");
	if (!ok(r && r->n_args == 8, "accessors: parsed"))
		return;
	ok(imap_arg_atom(&r->args[0], &s, &len) && strcmp(s, "123") == 0 && len == 3, "atom");
	ok(!imap_arg_atom(&r->args[1], &s, &len) && strcmp(s, "123") == 0, "atom: mismatch leaves outputs");
	ok(imap_arg_string(&r->args[1], &s, &len) && strcmp(s, "q") == 0, "string: quoted");
	ok(imap_arg_string(&r->args[2], &s, &len) && len == 2, "string: literal");
	ok(!imap_arg_string(&r->args[3], &s, &len), "string: NIL is not a string");
	ok(imap_arg_nstring(&r->args[3], &s, &len) && s == NULL && len == 0, "nstring: NIL");
	ok(imap_arg_is_nil(&r->args[3]) && !imap_arg_is_nil(&r->args[0]), "is_nil");
	ok(imap_arg_list(&r->args[4], &l, &n) && n == 1 && !imap_arg_list(&r->args[0], &l, &n),
	   "list");
	ok(imap_arg_number(&r->args[5], UINT64_MAX, &num) && num == UINT64_MAX, "number: max u64");
	ok(!imap_arg_number(&r->args[5], UINT32_MAX, &num) && num == UINT64_MAX, "number: over max");
	ok(imap_arg_number(&r->args[0], 123, &num) && num == 123, "number: equal to max");
	ok(!imap_arg_number(&r->args[0], 122, &num), "number: one over max");
	ok(imap_arg_number(&r->args[6], 10, &num) && num == 7, "number: leading zeros");
	ok(!imap_arg_number(&r->args[1], 10, &num), "number: quoted is not a number");
	ok(!imap_arg_number(&r->args[7], 10, &num), "number: letters");
	ok(imap_arg_atom_equals(&r->args[7], "UID") && !imap_arg_atom_equals(&r->args[7], "UI") &&
	   !imap_arg_atom_equals(&r->args[1], "q"), "atom_equals");
	imap_parser_free(&p);
	imap_parser_free(&p);
	ok(p == NULL, "free twice is harmless");
}

/* A literal over the limit fails at its '}', before any data arrives and
 * before anything is allocated for it. */
static void test_literal_fails_early(void)
{
	static const struct { const char *in; enum lim lim; } t[] = {
		{ "* XS {9999999999}", L_DEFAULT },
		{ "* 1 FETCH (BODY[] {99999999999}", L_DEFAULT },
		{ "* 1 FETCH (UID 5 BINARY[] ~{17}", L_TINY },
		{ "* XS (a {9}", L_TINY },
		{ "* XS {18446744073709551615}", L_DEFAULT },
	};
	struct imap_parser_limits l;
	size_t i, consumed;

	for (i = 0; i < N_ELEMENTS(t); i++) {
		struct imap_parser *p;
		const struct imap_response *r;
		size_t len = strlen(t[i].in);
		int ret;

		get_limits(t[i].lim, &l);
		p = imap_parser_new(&l);
		ret = imap_parser_feed(p, t[i].in, len, &consumed, &r);
		ok(ret == -1 && consumed == len && strstr(imap_parser_error(p), "exceeds") != NULL,
		   "'%s' fails at the closing brace: %s", t[i].in, imap_parser_error(p));
		imap_parser_free(&p);
	}
}

/* A big response is freed when the next one starts. */
static void test_memory_released(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	struct buf b;
	size_t consumed, big;
	int i, ret;

	buf_init(&b, BUF_MAX_UNLIMITED);
	ASSERT(buf_addstr(&b, "* SEARCH") == 0);
	for (i = 0; i < 50000; i++)
		ASSERT(buf_addf(&b, " %d", i + 1) == 0);
	ASSERT(buf_addstr(&b, " (((x))) {5000}\r\n") == 0);
	for (i = 0; i < 5000; i++)
		ASSERT(buf_addch(&b, 'L') == 0);
	ASSERT(buf_addstr(&b, "\r\n") == 0);
	ret = imap_parser_feed(p, b.data, b.len, &consumed, &r);
	ok(ret == 1 && consumed == b.len && r->n_args == 50002, "memory: big response parsed");
	big = imap_parser_mem_used(p);
	ret = imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &consumed, &r);
	ok(ret == 1 && imap_parser_mem_used(p) < 150 * 1024 && big > 1024 * 1024,
	   "memory: %zu bytes after a big response, %zu after the next", big,
	   imap_parser_mem_used(p));
	buf_release(&b);
	imap_parser_free(&p);
}

static void test_error_sticky(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	size_t consumed = 5;

	ok(imap_parser_feed(p, "* XS )\r\n", 8, &consumed, &r) == -1, "error: first");
	ok(imap_parser_feed(p, "* OK\r\n", 6, &consumed, &r) == -1 && consumed == 0,
	   "error: parser stays failed");
	ok(strstr(imap_parser_error(p), "')'") != NULL, "error: message kept");
	imap_parser_free(&p);
}

int main(void)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(cases); i++)
		run_case(&cases[i]);
	test_pipeline();
	test_big_body();
	test_fetch();
	test_list();
	test_status();
	test_vanished_esearch();
	test_uidset();
	test_uidset_expand();
	test_accessors();
	test_literal_fails_early();
	test_memory_released();
	test_error_sticky();
	return tap_done();
}
