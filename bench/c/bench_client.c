/*
 * The synchronous C libtirpc client of idl/bench.x for `npm run bench` (bench/rpc.ts): the
 * reference our Null() is compared with, and whose calls/s our 32-outstanding throughput
 * must beat. It calls through the stubs `rpcgen -N -l` generates, one call at a time, as a
 * C program using rpcgen would.
 *
 *   bench_client host tcp|udp port
 *
 * Connects directly (clnttcp_create / clntudp_create with an explicit port: no rpcbind),
 * prints `ready`, then serves commands on stdin, one per line, so the benchmark can
 * interleave its batches with its own:
 *
 *   null N | maxarg N | maxresult N   make N calls back to back; print the elapsed ns
 *   quit (or end of input)            exit 0
 *
 * A failed call prints `error <proc> <clnt_sperror>` and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "bench.h"

static char payload[BENCH_MAXDATA];

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void failed(CLIENT *clnt, const char *what) {
	printf("error %s %s\n", what, clnt_sperror(clnt, what));
	fflush(stdout);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc != 4 || (strcmp(argv[2], "tcp") != 0 && strcmp(argv[2], "udp") != 0)) {
		fprintf(stderr, "usage: %s host tcp|udp port\n", argv[0]);
		return 2;
	}
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "bench_client: bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	int sock = RPC_ANYSOCK;
	CLIENT *clnt;
	if (strcmp(argv[2], "tcp") == 0) {
		clnt = clnttcp_create(&addr, BENCH_PROG, BENCH_V1, &sock, 0, 0);
	} else {
		struct timeval wait = {1, 0};
		clnt = clntudp_create(&addr, BENCH_PROG, BENCH_V1, wait, &sock);
	}
	if (clnt == NULL) {
		fprintf(stderr, "bench_client: %s\n", clnt_spcreateerror(argv[1]));
		return 2;
	}
	for (unsigned i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 131u + 7u);
	bench_data arg = {BENCH_MAXDATA, payload};

	printf("ready\n");
	fflush(stdout);
	char line[128];
	while (fgets(line, sizeof line, stdin) != NULL) {
		char proc[32];
		long n = 0;
		if (strncmp(line, "quit", 4) == 0) break;
		if (sscanf(line, "%31s %ld", proc, &n) != 2 || n < 0) {
			printf("error usage %s", line);
			fflush(stdout);
			continue;
		}
		long long t0 = now_ns();
		if (strcmp(proc, "null") == 0) {
			for (long i = 0; i < n; i++)
				if (nullproc_1(clnt) == NULL) failed(clnt, "null");
		} else if (strcmp(proc, "maxarg") == 0) {
			for (long i = 0; i < n; i++)
				if (maxarg_1(arg, clnt) == NULL) failed(clnt, "maxarg");
		} else if (strcmp(proc, "maxresult") == 0) {
			for (long i = 0; i < n; i++) {
				bench_data *r = maxresult_1(BENCH_MAXDATA, clnt);
				if (r == NULL) failed(clnt, "maxresult");
				if (r->bench_data_len != BENCH_MAXDATA) {
					printf("error maxresult got %u bytes\n", r->bench_data_len);
					fflush(stdout);
					return 1;
				}
				xdr_free((xdrproc_t)xdr_bench_data, (char *)r);
			}
		} else {
			printf("error unknown procedure %s\n", proc);
			fflush(stdout);
			continue;
		}
		long long t1 = now_ns();
		printf("%lld\n", t1 - t0);
		fflush(stdout);
	}
	clnt_destroy(clnt);
	return 0;
}
