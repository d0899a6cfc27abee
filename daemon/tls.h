/*
 * daemon/tls.h — the server's TLS certificate (tls.cert_file, tls.key_file:
 * PEM), loaded with GnuTLS and handed to libmicrohttpd's handshakes through
 * a certificate callback, so SIGHUP can swap it without restarting the
 * listener or dropping a connection.
 *
 * A reload reads both files again; if they do not load (or the key does not
 * match the certificate) the current certificate stays and the error is
 * returned. New handshakes use the new certificate at once; sessions already
 * established keep theirs. A replaced certificate is kept until
 * rwd_tls_free (a GnuTLS session may still reference it; a few KiB each, and
 * a reload with unchanged files replaces nothing).
 *
 * Threads: rwd_tls_cert_callback runs on libmicrohttpd's threads; load,
 * reload and free on one thread (main). There is one TLS state per process
 * (the callback gets no user pointer), hence a file-level current pointer.
 */
#ifndef RWD_DAEMON_TLS_H
#define RWD_DAEMON_TLS_H

#include "core/error.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

/* Load cert_file (a PEM chain, leaf first) and key_file (PEM). 0 or an error. */
int rwd_tls_load(const char *cert_file, const char *key_file, rwd_error *err);

/*
 * Read the files again (the paths given to rwd_tls_load). 0 with *changed
 * set (0: the files are the same bytes, nothing replaced), or an error: the
 * current certificate stays.
 */
int rwd_tls_reload(int *changed, rwd_error *err);

/* The SHA-256 fingerprint of the serving leaf certificate, hex (65 bytes). */
void rwd_tls_fingerprint(char out[65]);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK (a gnutls_certificate_retrieve_function2). */
int rwd_tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
	const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
	unsigned int *pcert_length, gnutls_privkey_t *privkey);

/* Free every certificate loaded (after the HTTP server stopped). */
void rwd_tls_free(void);

#endif
