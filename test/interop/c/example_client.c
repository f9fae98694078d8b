/*
 * The C client of idl/example.x, for the interop tests (test/interop/c-rpc.test.ts).
 *
 * Built by test/interop/c-peer.ts with the system's Sun rpcgen in newstyle mode (-N: a
 * procedure with several arguments gets a stub taking them separately, which packs them
 * into an exproc_<name>_1_argument struct) and libtirpc.
 *
 *   example_client host tcp|udp port
 *
 * Connects to EXAMPLE_PROG version EXAMPLE_V1 at host:port directly (clnttcp_create /
 * clntudp_create with an explicit sockaddr_in and port: no rpcbind), calls every procedure
 * with fixed arguments, checks every result itself (the semantics of test/example.ts) and
 * prints one line per check:
 *
 *   ok ADD 5
 *   FAIL ADD expected 5 got 4
 *
 * It also checks the RFC 5531 errors the server must answer (SYSTEM_ERR for FAIL,
 * PROC_UNAVAIL, PROG_MISMATCH with low/high, PROG_UNAVAIL, GARBAGE_ARGS), AUTH_SYS
 * credentials and, over TCP, calls sent as several record-marking fragments (a second
 * client whose record buffer is 400 bytes). Exit status: 0 only if every check passed;
 * 1 if one failed; 2 on bad usage or if no client could be created.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "example.h"

static int failures = 0;
static int checks = 0;

static void ok(const char *what, const char *fmt, ...) {
	va_list ap;
	checks++;
	printf("ok %s", what);
	if (fmt != NULL && fmt[0] != '\0') {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
}

static void fail(const char *what, const char *fmt, ...) {
	va_list ap;
	checks++;
	failures++;
	printf("FAIL %s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void call_failed(const char *what, CLIENT *clnt) {
	/* clnt_sperror ends with a newline of its own */
	char *text = clnt_sperror(clnt, "");
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = '\0';
	fail(what, "call failed%s", text);
}

static void check_int(const char *what, long long expected, long long got) {
	if (expected == got) ok(what, "%lld", got);
	else fail(what, "expected %lld got %lld", expected, got);
}

static void check_str(const char *what, const char *expected, const char *got) {
	if (got != NULL && strcmp(expected, got) == 0) {
		if (strlen(got) <= 60) ok(what, "\"%s\"", got);
		else ok(what, "\"%.40s...\" (%zu bytes)", got, strlen(got));
	}
	else fail(what, "expected \"%s\" got \"%s\"", expected, got == NULL ? "(null)" : got);
}

/* record(id) of test/example.ts */
static ex_record make_record(u_int id, char *name, size_t size) {
	ex_record r;
	memset(&r, 0, sizeof r);
	r.id = id;
	r.stamp = (quad_t)id * 1000000007LL;
	r.weight = id / 4.0;
	r.active = id % 2 == 0;
	snprintf(name, size, "record %u", id);
	r.name = name;
	r.position.x = (int)id;
	r.position.y = -(int)id;
	return r;
}

static void check_record(const char *what, const ex_record *expected, const ex_record *got) {
	if (got->id != expected->id) { fail(what, "expected id %u got %u", expected->id, got->id); return; }
	if (got->stamp != expected->stamp) { fail(what, "expected stamp %lld got %lld", (long long)expected->stamp, (long long)got->stamp); return; }
	if (got->weight != expected->weight) { fail(what, "expected weight %.17g got %.17g", expected->weight, got->weight); return; }
	if ((got->active != 0) != (expected->active != 0)) { fail(what, "expected active %d got %d", expected->active, got->active); return; }
	if (got->name == NULL || strcmp(got->name, expected->name) != 0)
		{ fail(what, "expected name \"%s\" got \"%s\"", expected->name, got->name == NULL ? "(null)" : got->name); return; }
	if (got->position.x != expected->position.x || got->position.y != expected->position.y)
		{ fail(what, "expected position (%d,%d) got (%d,%d)", expected->position.x, expected->position.y, got->position.x, got->position.y); return; }
	ok(what, "{id %u, stamp %lld, weight %g, active %d, name \"%s\", position (%d,%d)}", got->id, (long long)got->stamp, got->weight,
	   got->active, got->name, got->position.x, got->position.y);
}

/* The payload() of test/example.ts. */
static void fill_payload(char *bytes, u_int n) {
	for (u_int i = 0; i < n; i++) bytes[i] = (char)((i * 37 + 11) & 0xff);
}

static void check_reverse(const char *what, CLIENT *clnt, u_int n) {
	static char in[EX_MAXDATA];
	ex_data arg;
	fill_payload(in, n);
	arg.ex_data_len = n;
	arg.ex_data_val = in;
	ex_data *res = exproc_reverse_1(arg, clnt);
	if (res == NULL) { call_failed(what, clnt); return; }
	if (res->ex_data_len != n) {
		fail(what, "expected %u bytes got %u", n, res->ex_data_len);
	} else {
		u_int bad = n;
		for (u_int i = 0; i < n; i++) {
			if (res->ex_data_val[i] != in[n - 1 - i]) {
				bad = i;
				break;
			}
		}
		if (bad == n) ok(what, "%u bytes reversed", n);
		else fail(what, "expected byte %u = %u got %u", bad, (unsigned char)in[n - 1 - bad], (unsigned char)res->ex_data_val[bad]);
	}
	xdr_free((xdrproc_t)xdr_ex_data, (char *)res);
}

static void check_echo(const char *what, CLIENT *clnt, u_int id) {
	char name[EX_MAXNAME + 1];
	ex_record r = make_record(id, name, sizeof name);
	ex_record *res = exproc_echo_1(r, clnt);
	if (res == NULL) { call_failed(what, clnt); return; }
	check_record(what, &r, res);
	xdr_free((xdrproc_t)xdr_ex_record, (char *)res);
}

static void check_greet(const char *what, CLIENT *clnt, const char *s, u_int times) {
	size_t unit = strlen(s) + 1;
	char *expected = malloc(unit * times + 1);
	char *at = expected;
	for (u_int i = 0; i < times; i++) {
		memcpy(at, s, unit - 1);
		at[unit - 1] = '!';
		at += unit;
	}
	*at = '\0';
	char **res = exproc_greet_1((char *)s, times, clnt);
	if (res == NULL) call_failed(what, clnt);
	else {
		check_str(what, expected, *res);
		xdr_free((xdrproc_t)xdr_wrapstring, (char *)res);
	}
	free(expected);
}

static void check_lookup(CLIENT *clnt, u_int id) {
	char what[32];
	snprintf(what, sizeof what, "LOOKUP(%u)", id);
	ex_result *res = exproc_lookup_1(id, clnt);
	if (res == NULL) { call_failed(what, clnt); return; }
	if (id == 0) {
		if (res->status == EX_EMPTY) ok(what, "EX_EMPTY");
		else fail(what, "expected status EX_EMPTY (1) got %d", (int)res->status);
	} else if (id <= 100) {
		char name[EX_MAXNAME + 1];
		ex_record r = make_record(id, name, sizeof name);
		if (res->status != EX_OK) fail(what, "expected status EX_OK (0) got %d", (int)res->status);
		else check_record(what, &r, &res->ex_result_u.record);
	} else {
		char reason[EX_MAXNAME + 1];
		snprintf(reason, sizeof reason, "no %u", id);
		if (res->status != EX_TOO_BIG) fail(what, "expected status EX_TOO_BIG (2) got %d", (int)res->status);
		else check_str(what, reason, res->ex_result_u.reason);
	}
	xdr_free((xdrproc_t)xdr_ex_result, (char *)res);
}

/* A list of 1..n, built on the heap; freed with xdr_free(xdr_ex_list). */
static ex_list make_list(int n) {
	ex_list head = NULL;
	for (int i = n; i >= 1; i--) {
		ex_node *node = malloc(sizeof *node);
		node->value = i;
		node->next = head;
		head = node;
	}
	return head;
}

static void check_sum(const char *what, CLIENT *clnt, int n) {
	ex_list l = make_list(n);
	int *res = exproc_sum_1(l, clnt);
	if (res == NULL) call_failed(what, clnt);
	else check_int(what, (long long)n * (n + 1) / 2, *res);
	xdr_free((xdrproc_t)xdr_ex_list, (char *)&l);
}

static void check_range(const char *what, CLIENT *clnt, int n) {
	ex_list *res = exproc_range_1(n, clnt);
	if (res == NULL) { call_failed(what, clnt); return; }
	int i = 1;
	ex_node *node = *res;
	for (; node != NULL && i <= n; node = node->next, i++) {
		if (node->value != i) break;
	}
	if (node == NULL && i == n + 1) ok(what, n == 0 ? "empty" : "1..%d", n);
	else if (node == NULL) fail(what, "expected %d elements got %d", n, i - 1);
	else fail(what, "expected element %d = %d got %d", i, i, node->value);
	xdr_free((xdrproc_t)xdr_ex_list, (char *)res);
}

static const struct timeval call_timeout = { 10, 0 };

/* A raw call whose outcome must be an RPC error: returns the clnt_stat, fills *err. */
static enum clnt_stat raw_call(CLIENT *clnt, rpcproc_t proc, xdrproc_t xargs, void *args, struct rpc_err *err) {
	char result[64];
	memset(result, 0, sizeof result);
	enum clnt_stat stat = clnt_call(clnt, proc, xargs, (caddr_t)args, (xdrproc_t)xdr_void, (caddr_t)result, call_timeout);
	clnt_geterr(clnt, err);
	return stat;
}

static void expect_stat(const char *what, enum clnt_stat expected, enum clnt_stat got) {
	if (got == expected) ok(what, "%s", clnt_sperrno(got));
	else fail(what, "expected \"%s\" (%d) got \"%s\" (%d)", clnt_sperrno(expected), (int)expected, clnt_sperrno(got), (int)got);
}

static CLIENT *create(const struct sockaddr_in *addr, int udp, rpcprog_t prog, rpcvers_t vers, u_int bufsize) {
	struct sockaddr_in a = *addr;
	int sock = RPC_ANYSOCK;
	CLIENT *clnt;
	if (udp) {
		struct timeval wait = { 0, 500000 }; /* retransmit interval */
		clnt = clntudp_create(&a, prog, vers, wait, &sock);
	} else {
		clnt = clnttcp_create(&a, prog, vers, &sock, bufsize, bufsize);
	}
	if (clnt != NULL) clnt_control(clnt, CLSET_TIMEOUT, (char *)&call_timeout);
	return clnt;
}

static void calls(CLIENT *clnt, int udp) {
	/* NULL */
	if (exproc_null_1(clnt) == NULL) call_failed("NULL", clnt);
	else ok("NULL", "");

	/* ADD: two arguments (rpcgen -N packs them into exproc_add_1_argument) */
	int *sum = exproc_add_1(2, 3, clnt);
	if (sum == NULL) call_failed("ADD", clnt);
	else check_int("ADD", 5, *sum);
	sum = exproc_add_1(INT_MIN, INT_MAX, clnt);
	if (sum == NULL) call_failed("ADD(INT_MIN,INT_MAX)", clnt);
	else check_int("ADD(INT_MIN,INT_MAX)", -1, *sum);

	/* MOVE: three arguments, one a struct */
	ex_point p = { 1, 2 };
	ex_point *moved = exproc_move_1(p, 30, -40, clnt);
	if (moved == NULL) call_failed("MOVE", clnt);
	else if (moved->x == 31 && moved->y == -38) ok("MOVE", "(%d,%d)", moved->x, moved->y);
	else fail("MOVE", "expected (31,-38) got (%d,%d)", moved->x, moved->y);

	check_echo("ECHO", clnt, 7);

	check_lookup(clnt, 0);
	check_lookup(clnt, 1);
	check_lookup(clnt, 42);
	check_lookup(clnt, 100);
	check_lookup(clnt, 101);
	check_lookup(clnt, 1000);

	check_sum("SUM(1..4)", clnt, 4);
	check_sum("SUM(empty)", clnt, 0);
	check_sum("SUM(1..500)", clnt, 500);

	check_range("RANGE(3)", clnt, 3);
	check_range("RANGE(0)", clnt, 0);
	check_range("RANGE(200)", clnt, 200);
	check_range("RANGE(500)", clnt, 500);

	check_reverse("REVERSE(1440)", clnt, EX_MAXDATA);
	check_reverse("REVERSE(0)", clnt, 0);
	check_reverse("REVERSE(3)", clnt, 3);

	/* GREET: a string and an unsigned int */
	check_greet("GREET", clnt, "h\xc3\xa9llo", 3);
	check_greet("GREET(empty)", clnt, "", 0);

	struct rpc_err err;
	expect_stat("FAIL", RPC_SYSTEMERROR, raw_call(clnt, EXPROC_FAIL, (xdrproc_t)xdr_void, NULL, &err));
	expect_stat("PROC_UNAVAIL(99)", RPC_PROCUNAVAIL, raw_call(clnt, 99, (xdrproc_t)xdr_void, NULL, &err));
	/* REVERSE with an opaque of 2000 bytes announced (EX_MAXDATA is 1440): undecodable anywhere */
	u_int too_long = 2000;
	expect_stat("GARBAGE_ARGS(REVERSE)", RPC_CANTDECODEARGS, raw_call(clnt, EXPROC_REVERSE, (xdrproc_t)xdr_u_int, &too_long, &err));
	/* ADD without its arguments. Over TCP only: libtirpc's UDP server decodes arguments from
	   its whole receive buffer, not just the datagram, so it reads the previous call's bytes. */
	if (!udp)
		expect_stat("GARBAGE_ARGS(ADD)", RPC_CANTDECODEARGS, raw_call(clnt, EXPROC_ADD, (xdrproc_t)xdr_void, NULL, &err));
	/* the channel still works after the errors */
	sum = exproc_add_1(40, 2, clnt);
	if (sum == NULL) call_failed("ADD(after errors)", clnt);
	else check_int("ADD(after errors)", 42, *sum);
}

int main(int argc, char **argv) {
	if (argc != 4 || (strcmp(argv[2], "tcp") != 0 && strcmp(argv[2], "udp") != 0)) {
		fprintf(stderr, "usage: %s host tcp|udp port\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int udp = strcmp(argv[2], "udp") == 0;
	long port = strtol(argv[3], NULL, 10);
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "example_client: bad port %s\n", argv[3]);
		return 2;
	}
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		struct hostent *h = gethostbyname(host);
		if (h == NULL || h->h_addrtype != AF_INET) {
			fprintf(stderr, "example_client: unknown host %s\n", host);
			return 2;
		}
		memcpy(&addr.sin_addr, h->h_addr_list[0], sizeof addr.sin_addr);
	}

	CLIENT *clnt = create(&addr, udp, EXAMPLE_PROG, EXAMPLE_V1, 0);
	if (clnt == NULL) {
		fprintf(stderr, "example_client: %s", clnt_spcreateerror(argv[2]));
		return 2;
	}
	calls(clnt, udp);

	/* The same calls with AUTH_SYS credentials. */
	gid_t gids[2] = { 100, 200 };
	AUTH *none = clnt->cl_auth;
	clnt->cl_auth = authunix_create("c-client", 1000, 1000, 2, gids);
	if (clnt->cl_auth == NULL) {
		fail("AUTH_SYS", "authunix_create failed");
		clnt->cl_auth = none;
	} else {
		int *sum = exproc_add_1(20, 22, clnt);
		if (sum == NULL) call_failed("AUTH_SYS(ADD)", clnt);
		else check_int("AUTH_SYS(ADD)", 42, *sum);
		check_echo("AUTH_SYS(ECHO)", clnt, 9);
		auth_destroy(clnt->cl_auth);
		clnt->cl_auth = none;
	}
	clnt_destroy(clnt);

	/* Version 2 does not exist: PROG_MISMATCH, with the versions the server has. */
	struct rpc_err err;
	CLIENT *v2 = create(&addr, udp, EXAMPLE_PROG, 2, 0);
	if (v2 == NULL) {
		fail("PROG_MISMATCH", "client creation failed: %s", clnt_spcreateerror("v2"));
	} else {
		enum clnt_stat stat = raw_call(v2, EXPROC_NULL, (xdrproc_t)xdr_void, NULL, &err);
		if (stat != RPC_PROGVERSMISMATCH) expect_stat("PROG_MISMATCH", RPC_PROGVERSMISMATCH, stat);
		else if (err.re_vers.low != 1 || err.re_vers.high != 1)
			fail("PROG_MISMATCH", "expected versions 1..1 got %lu..%lu", (unsigned long)err.re_vers.low, (unsigned long)err.re_vers.high);
		else ok("PROG_MISMATCH", "versions %lu..%lu", (unsigned long)err.re_vers.low, (unsigned long)err.re_vers.high);
		clnt_destroy(v2);
	}

	/* A program the server does not have: PROG_UNAVAIL. */
	CLIENT *other = create(&addr, udp, EXAMPLE_PROG + 1, EXAMPLE_V1, 0);
	if (other == NULL) {
		fail("PROG_UNAVAIL", "client creation failed: %s", clnt_spcreateerror("other"));
	} else {
		expect_stat("PROG_UNAVAIL", RPC_PROGUNAVAIL, raw_call(other, EXPROC_NULL, (xdrproc_t)xdr_void, NULL, &err));
		clnt_destroy(other);
	}

	/* TCP: calls written as several record-marking fragments (a 400-byte record buffer). */
	if (!udp) {
		CLIENT *frag = create(&addr, 0, EXAMPLE_PROG, EXAMPLE_V1, 400);
		if (frag == NULL) {
			fail("FRAGMENTS", "client creation failed: %s", clnt_spcreateerror("fragments"));
		} else {
			check_reverse("FRAGMENTS(REVERSE(1440))", frag, EX_MAXDATA);
			check_echo("FRAGMENTS(ECHO)", frag, 11);
			check_greet("FRAGMENTS(GREET)", frag, "fragmented", 100);
			check_sum("FRAGMENTS(SUM(1..500))", frag, 500);
			clnt_destroy(frag);
		}
	}

	printf("# %d checks, %d failed\n", checks, failures);
	fflush(stdout);
	return failures == 0 ? 0 : 1;
}
