/* daemon/tls.c — see tls.h. */
#include "tls.h"

#include <gnutls/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RWD_TLS_MAX_CHAIN 16

typedef struct cert_set {
	gnutls_pcert_st pcert[RWD_TLS_MAX_CHAIN];
	unsigned n_pcert;
	gnutls_privkey_t key;
	unsigned char digest[32];   /* SHA-256 of the two files' bytes: "unchanged?" */
	char fingerprint[65];       /* SHA-256 of the leaf certificate (DER), hex */
	struct cert_set *older;     /* replaced ones, kept until rwd_tls_free */
} cert_set;

static _Atomic(cert_set *) g_current;
static char *g_cert_file, *g_key_file;

static void set_free(cert_set *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->n_pcert; i++)
		gnutls_pcert_deinit(&s->pcert[i]);
	if (s->key)
		gnutls_privkey_deinit(s->key);
	free(s);
}

static int tls_err(rwd_error *err, const char *file, const char *field, int code, const char *what, int gr)
{
	rwd_error_where(err, file, field);
	return rwd_errorf(err, code, "%s%s%s", what, gr ? ": " : "", gr ? gnutls_strerror(gr) : "");
}

/* Does the private key belong to the leaf certificate's public key? */
static int key_matches(cert_set *s)
{
	gnutls_pubkey_t pub = NULL;
	unsigned char a[64], b[64];
	size_t na = sizeof(a), nb = sizeof(b);
	int ok = gnutls_pubkey_init(&pub) == 0 &&
		gnutls_pubkey_import_privkey(pub, s->key, 0, 0) == 0 &&
		gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &na) == 0 &&
		gnutls_pubkey_get_key_id(s->pcert[0].pubkey, GNUTLS_KEYID_USE_SHA256, b, &nb) == 0 &&
		na == nb && memcmp(a, b, na) == 0;
	if (pub)
		gnutls_pubkey_deinit(pub);
	return ok;
}

static int load_set(const char *cert_file, const char *key_file, cert_set **out, rwd_error *err)
{
	gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
	cert_set *s = calloc(1, sizeof(*s));
	int r = 0, gr;
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if ((gr = gnutls_load_file(cert_file, &cd)) < 0) {
		r = tls_err(err, cert_file, "tls.cert_file", RWD_E_IO, "cannot read the certificate", gr);
		goto fail;
	}
	if ((gr = gnutls_load_file(key_file, &kd)) < 0) {
		r = tls_err(err, key_file, "tls.key_file", RWD_E_IO, "cannot read the private key", gr);
		goto fail;
	}
	unsigned n = RWD_TLS_MAX_CHAIN;
	if ((gr = gnutls_pcert_list_import_x509_raw(s->pcert, &n, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0 || n == 0) {
		r = tls_err(err, cert_file, "tls.cert_file", RWD_E_FORMAT,
			"not a PEM certificate chain (at most 16 certificates, leaf first)", gr < 0 ? gr : 0);
		goto fail;
	}
	s->n_pcert = n;
	if ((gr = gnutls_privkey_init(&s->key)) < 0 ||
		(gr = gnutls_privkey_import_x509_raw(s->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		r = tls_err(err, key_file, "tls.key_file", RWD_E_FORMAT,
			"not a PEM private key (unencrypted)", gr);
		goto fail;
	}
	if (!key_matches(s)) {
		r = tls_err(err, key_file, "tls.key_file", RWD_E_INVALID,
			"the private key does not belong to the certificate in tls.cert_file", 0);
		goto fail;
	}
	unsigned char fp[32];
	size_t nfp = sizeof(fp);
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &s->pcert[0].cert, fp, &nfp) == 0 && nfp == 32)
		for (int i = 0; i < 32; i++)
			snprintf(s->fingerprint + 2 * i, 3, "%02x", fp[i]);
	/* the files' bytes, to tell a reload that changes nothing */
	gnutls_hash_hd_t hh;
	if (gnutls_hash_init(&hh, GNUTLS_DIG_SHA256) == 0) {
		gnutls_hash(hh, cd.data, cd.size);
		gnutls_hash(hh, kd.data, kd.size);
		gnutls_hash_deinit(hh, s->digest);
	}
	*out = s;
	s = NULL;
fail:
	gnutls_free(cd.data);
	/* the key's bytes do not outlive the import */
	if (kd.data)
		memset(kd.data, 0, kd.size);
	gnutls_free(kd.data);
	set_free(s);
	return r;
}

int rwd_tls_load(const char *cert_file, const char *key_file, rwd_error *err)
{
	cert_set *s = NULL;
	int r = load_set(cert_file, key_file, &s, err);
	if (r)
		return r;
	free(g_cert_file);
	free(g_key_file);
	g_cert_file = strdup(cert_file);
	g_key_file = strdup(key_file);
	if (!g_cert_file || !g_key_file) {
		set_free(s);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	s->older = atomic_load(&g_current);
	atomic_store(&g_current, s);
	return 0;
}

int rwd_tls_reload(int *changed, rwd_error *err)
{
	*changed = 0;
	cert_set *cur = atomic_load(&g_current), *s = NULL;
	if (!cur || !g_cert_file)
		return rwd_errorf(err, RWD_E_STATE, "TLS is not configured");
	int r = load_set(g_cert_file, g_key_file, &s, err);
	if (r)
		return r;
	if (memcmp(s->digest, cur->digest, sizeof(s->digest)) == 0) {
		set_free(s);
		return 0;
	}
	/* handshakes from now on take the new one; the old stays valid for
	 * handshakes in flight and sessions that hold it */
	s->older = cur;
	atomic_store(&g_current, s);
	*changed = 1;
	return 0;
}

void rwd_tls_fingerprint(char out[65])
{
	cert_set *cur = atomic_load(&g_current);
	snprintf(out, 65, "%s", cur ? cur->fingerprint : "");
}

int rwd_tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
	const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
	unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	(void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	cert_set *cur = atomic_load(&g_current);
	if (!cur) {
		*pcert_length = 0;
		return -1;
	}
	*pcert = cur->pcert;
	*pcert_length = cur->n_pcert;
	*privkey = cur->key;
	return 0;
}

void rwd_tls_free(void)
{
	cert_set *s = atomic_exchange(&g_current, NULL);
	while (s) {
		cert_set *older = s->older;
		set_free(s);
		s = older;
	}
	free(g_cert_file);
	free(g_key_file);
	g_cert_file = g_key_file = NULL;
}
