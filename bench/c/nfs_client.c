/*
 * The C reference of the NFS section: an NFSv3 client (RFC 1813) as a C programmer writes
 * one with libtirpc — the XDR routines from the system's `rpcgen -C` on idl/nfs3.x, one
 * CLIENT handle over TCP, and clnt_call, which sends one call and waits for its reply (it
 * has no window: one call outstanding, always).
 *
 *   nfs_client HOST PORT READ-FILEHANDLE-HEX WRITE-FILEHANDLE-HEX FILE-SIZE
 *
 * prints "ready", then answers each command on stdin with the ns its calls took, timed
 * here (so the command's own trip through the pipe is not counted):
 *
 *   getattr N   N GETATTRs of the file read
 *   read N      N READs of 64 KiB, at offsets that walk the file read
 *   write N     N UNSTABLE WRITEs of 64 KiB to the other file, likewise
 *
 * Any failed call prints "error ..." instead and exits non-zero.
 */
#include <arpa/inet.h>
#include <rpc/rpc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nfs3.h"

#define CHUNK 65536

static CLIENT *clnt;
static nfs_fh3 read_fh, write_fh;
static uint64_t file_size;
static char read_buf[CHUNK];
static char write_buf[CHUNK];
static uint64_t read_offset, write_offset;
static struct timeval timeout = {30, 0};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what) {
  printf("error %s: %s\n", what, clnt_sperror(clnt, ""));
  fflush(stdout);
  exit(1);
}

static uint64_t offset_step(uint64_t *next) {
  uint64_t o = *next;
  *next += CHUNK;
  if (*next + CHUNK > file_size) *next = 0;
  return o;
}

static int parse_fh(const char *hex, nfs_fh3 *fh) {
  size_t len = strlen(hex);
  if (len == 0 || len % 2 != 0 || len / 2 > NFS3_FHSIZE) return -1;
  fh->data.data_len = (u_int)(len / 2);
  fh->data.data_val = malloc(len / 2);
  for (size_t i = 0; i < len / 2; i++) {
    unsigned b;
    if (sscanf(hex + 2 * i, "%2x", &b) != 1) return -1;
    fh->data.data_val[i] = (char)b;
  }
  return 0;
}

static int getattr_once(void) {
  GETATTR3args args = {.object = read_fh};
  GETATTR3res res;
  memset(&res, 0, sizeof res);
  if (clnt_call(clnt, NFSPROC3_GETATTR, (xdrproc_t)xdr_GETATTR3args, (char *)&args, (xdrproc_t)xdr_GETATTR3res, (char *)&res, timeout) != RPC_SUCCESS) fail("GETATTR");
  return res.status;
}

static int read_once(void) {
  READ3args args = {.file = read_fh, .offset = offset_step(&read_offset), .count = CHUNK};
  READ3res res;
  memset(&res, 0, sizeof res);
  /* Decoded into our buffer: xdr_bytes fills a buffer it is given instead of allocating one. */
  res.READ3res_u.resok.data.data_val = read_buf;
  if (clnt_call(clnt, NFSPROC3_READ, (xdrproc_t)xdr_READ3args, (char *)&args, (xdrproc_t)xdr_READ3res, (char *)&res, timeout) != RPC_SUCCESS) fail("READ");
  if (res.status == NFS3_OK && res.READ3res_u.resok.count != CHUNK) {
    printf("error READ returned %u bytes\n", res.READ3res_u.resok.count);
    fflush(stdout);
    exit(1);
  }
  return res.status;
}

static int write_once(void) {
  WRITE3args args = {.file = write_fh, .offset = offset_step(&write_offset), .count = CHUNK, .stable = UNSTABLE};
  args.data.data_len = CHUNK;
  args.data.data_val = write_buf;
  WRITE3res res;
  memset(&res, 0, sizeof res);
  if (clnt_call(clnt, NFSPROC3_WRITE, (xdrproc_t)xdr_WRITE3args, (char *)&args, (xdrproc_t)xdr_WRITE3res, (char *)&res, timeout) != RPC_SUCCESS) fail("WRITE");
  return res.status;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s HOST PORT READ-FILEHANDLE-HEX WRITE-FILEHANDLE-HEX FILE-SIZE\n", argv[0]);
    return 2;
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  if (parse_fh(argv[3], &read_fh) != 0 || parse_fh(argv[4], &write_fh) != 0) {
    fprintf(stderr, "bad file handle\n");
    return 2;
  }
  file_size = strtoull(argv[5], NULL, 10);
  if (file_size < CHUNK) {
    fprintf(stderr, "file too small\n");
    return 2;
  }
  for (size_t i = 0; i < CHUNK; i++) write_buf[i] = (char)(i * 7);

  int sock = RPC_ANYSOCK;
  /* Send and receive buffers of 0: libtirpc's defaults, as a caller who does not tune them gets. */
  clnt = clnttcp_create(&addr, NFS_PROGRAM, NFS_V3, &sock, 0, 0);
  if (clnt == NULL) {
    printf("error %s\n", clnt_spcreateerror("clnttcp_create"));
    return 1;
  }
  /* AUTH_SYS as root with no groups: what the TypeScript side sends too. */
  clnt->cl_auth = authunix_create("rpcgen-ts-bench", 0, 0, 0, NULL);
  if (getattr_once() != NFS3_OK) {
    printf("error GETATTR of the file failed\n");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);

  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    char cmd[32];
    long n;
    if (sscanf(line, "%31s %ld", cmd, &n) != 2 || n <= 0) break;
    int (*op)(void);
    if (strcmp(cmd, "getattr") == 0) op = getattr_once;
    else if (strcmp(cmd, "read") == 0) op = read_once;
    else if (strcmp(cmd, "write") == 0) op = write_once;
    else {
      printf("error unknown command %s\n", cmd);
      fflush(stdout);
      return 1;
    }
    int bad = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) bad |= op() != NFS3_OK;
    uint64_t t1 = now_ns();
    if (bad) printf("error %s: an NFS status other than NFS3_OK\n", cmd);
    else printf("%llu\n", (unsigned long long)(t1 - t0));
    fflush(stdout);
    if (bad) return 1;
  }
  auth_destroy(clnt->cl_auth);
  clnt_destroy(clnt);
  return 0;
}
