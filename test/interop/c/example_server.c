/*
 * The C server of idl/example.x, for the interop tests (test/interop/c-rpc.test.ts).
 *
 * Built by test/interop/c-peer.ts with the system's Sun rpcgen in newstyle mode (-N) and
 * libtirpc: `rpcgen -N -m` writes the dispatch routine example_prog_1 (no main); this file
 * holds the procedures it calls and the main.
 *
 * The procedures have the semantics of the TypeScript handlers the tests use
 * (test/example.ts, exampleHandlers): ADD a+b, MOVE p+(dx,dy), ECHO returns its record,
 * LOOKUP(0) EX_EMPTY, LOOKUP(1..100) EX_OK with the record record(id), otherwise the
 * default arm (EX_TOO_BIG) with the reason "no <id>", SUM sums a list, RANGE(n) is 1..n,
 * REVERSE reverses the bytes, GREET(s, n) repeats s+"!" n times, FAIL answers SYSTEM_ERR
 * (svcerr_systemerr; the procedure returns NULL so the dispatcher sends nothing else).
 *
 * Results are static (rpcgen -m without -M); what a procedure allocated for its previous
 * result is freed when it is called again.
 *
 * main: example_server [tcp-buffer-bytes]
 *   Creates a TCP and a UDP transport on ephemeral ports, registers EXAMPLE_PROG version
 *   EXAMPLE_V1 on both WITHOUT the portmapper (protocol 0), prints
 *     tcp <port>
 *     udp <port>
 *   on stdout, flushes, and runs svc_run(). tcp-buffer-bytes (default 0: libtirpc's
 *   default) sizes the TCP transport's record buffers; a small value (say 400) makes
 *   libtirpc send each reply longer than that as several record-marking fragments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include "example.h"

void example_prog_1(struct svc_req *rqstp, SVCXPRT *transp);

void *exproc_null_1_svc(struct svc_req *rqstp) {
	static char nothing;
	(void)rqstp;
	return &nothing;
}

int *exproc_add_1_svc(int a, int b, struct svc_req *rqstp) {
	static int result;
	(void)rqstp;
	/* Wraps like the TypeScript side's int32 arithmetic (computed unsigned: no UB). */
	result = (int)((unsigned int)a + (unsigned int)b);
	return &result;
}

ex_point *exproc_move_1_svc(ex_point p, int dx, int dy, struct svc_req *rqstp) {
	static ex_point result;
	(void)rqstp;
	result.x = (int)((unsigned int)p.x + (unsigned int)dx);
	result.y = (int)((unsigned int)p.y + (unsigned int)dy);
	return &result;
}

ex_record *exproc_echo_1_svc(ex_record r, struct svc_req *rqstp) {
	/* A shallow copy: r.name points into the decoded arguments, which the dispatcher frees
	   only after the reply is sent. */
	static ex_record result;
	(void)rqstp;
	result = r;
	return &result;
}

ex_result *exproc_lookup_1_svc(u_int id, struct svc_req *rqstp) {
	static ex_result result;
	static char name[EX_MAXNAME + 1];
	(void)rqstp;
	memset(&result, 0, sizeof result);
	if (id == 0) {
		result.status = EX_EMPTY;
	} else if (id <= 100) {
		/* record(id) of test/example.ts */
		ex_record *r = &result.ex_result_u.record;
		result.status = EX_OK;
		r->id = id;
		r->stamp = (quad_t)id * 1000000007LL;
		r->weight = id / 4.0;
		r->active = id % 2 == 0;
		snprintf(name, sizeof name, "record %u", id);
		r->name = name;
		r->position.x = (int)id;
		r->position.y = -(int)id;
	} else {
		result.status = EX_TOO_BIG;
		snprintf(name, sizeof name, "no %u", id);
		result.ex_result_u.reason = name;
	}
	return &result;
}

int *exproc_sum_1_svc(ex_list list, struct svc_req *rqstp) {
	static int result;
	unsigned int sum = 0;
	(void)rqstp;
	for (ex_node *n = list; n != NULL; n = n->next) sum += (unsigned int)n->value;
	result = (int)sum;
	return &result;
}

ex_list *exproc_range_1_svc(int n, struct svc_req *rqstp) {
	static ex_list result;
	(void)rqstp;
	xdr_free((xdrproc_t)xdr_ex_list, (char *)&result);
	result = NULL;
	for (int i = n; i >= 1; i--) {
		ex_node *node = malloc(sizeof *node);
		if (node == NULL) {
			svcerr_systemerr(rqstp->rq_xprt);
			return NULL;
		}
		node->value = i;
		node->next = result;
		result = node;
	}
	return &result;
}

ex_data *exproc_reverse_1_svc(ex_data data, struct svc_req *rqstp) {
	static ex_data result;
	static char bytes[EX_MAXDATA];
	(void)rqstp;
	u_int n = data.ex_data_len;
	if (n > EX_MAXDATA) n = EX_MAXDATA; /* xdr_ex_data already refused longer input */
	for (u_int i = 0; i < n; i++) bytes[i] = data.ex_data_val[n - 1 - i];
	result.ex_data_len = n;
	result.ex_data_val = bytes;
	return &result;
}

char **exproc_greet_1_svc(char *s, u_int times, struct svc_req *rqstp) {
	static char *result;
	free(result);
	size_t unit = strlen(s) + 1;
	if (times > 0 && unit > (size_t)16 * 1024 * 1024 / times) {
		result = NULL;
		svcerr_systemerr(rqstp->rq_xprt);
		return NULL;
	}
	result = malloc(unit * times + 1);
	if (result == NULL) {
		svcerr_systemerr(rqstp->rq_xprt);
		return NULL;
	}
	char *at = result;
	for (u_int i = 0; i < times; i++) {
		memcpy(at, s, unit - 1);
		at[unit - 1] = '!';
		at += unit;
	}
	*at = '\0';
	return &result;
}

void *exproc_fail_1_svc(struct svc_req *rqstp) {
	/* C cannot throw: answer SYSTEM_ERR, and return NULL so nothing else is sent. */
	svcerr_systemerr(rqstp->rq_xprt);
	return NULL;
}

int main(int argc, char **argv) {
	u_int tcpbuf = 0;
	if (argc > 2) {
		fprintf(stderr, "usage: %s [tcp-buffer-bytes]\n", argv[0]);
		return 2;
	}
	if (argc == 2) tcpbuf = (u_int)strtoul(argv[1], NULL, 10);
	signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the server */

	SVCXPRT *tcp = svctcp_create(RPC_ANYSOCK, tcpbuf, tcpbuf);
	if (tcp == NULL) {
		fprintf(stderr, "example_server: svctcp_create failed\n");
		return 1;
	}
	/* protocol 0: no registration with the portmapper */
	if (!svc_register(tcp, EXAMPLE_PROG, EXAMPLE_V1, example_prog_1, 0)) {
		fprintf(stderr, "example_server: svc_register (tcp) failed\n");
		return 1;
	}
	SVCXPRT *udp = svcudp_create(RPC_ANYSOCK);
	if (udp == NULL) {
		fprintf(stderr, "example_server: svcudp_create failed\n");
		return 1;
	}
	if (!svc_register(udp, EXAMPLE_PROG, EXAMPLE_V1, example_prog_1, 0)) {
		fprintf(stderr, "example_server: svc_register (udp) failed\n");
		return 1;
	}
	printf("tcp %u\nudp %u\n", (unsigned)tcp->xp_port, (unsigned)udp->xp_port);
	fflush(stdout);
	svc_run();
	fprintf(stderr, "example_server: svc_run returned\n");
	return 1;
}
