/*
 * tests/unit/test_tensor.c — lib/tensor: dtypes, F16/BF16 conversion (PyTorch
 * as the oracle, all 65,536 bit patterns), the safetensors loader on valid
 * files (hand-made bytes and files written by tools/safetensors_io.py),
 * every class of malformed file, sharded folders, and the real aesthetic
 * head fixture.
 */
#include "rwd_check.h"

#include "core/error.h"
#include "tensor/dtype.h"
#include "tensor/safetensors.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PY "/usr/bin/python3"

/* ---- helpers ------------------------------------------------------------- */

/* A safetensors image: 8-byte length, header text, data bytes. */
typedef struct blob {
	unsigned char *p;
	size_t n;
} blob;

static blob make_blob(const char *header, const void *data, size_t dlen)
{
	size_t hn = strlen(header);
	blob b = { malloc(8 + hn + dlen + 1), 8 + hn + dlen };
	ck_assert_ptr_nonnull(b.p);
	for (int i = 0; i < 8; i++)
		b.p[i] = (unsigned char)((uint64_t)hn >> (8 * i));
	memcpy(b.p + 8, header, hn);
	if (dlen)
		memcpy(b.p + 8 + hn, data, dlen);
	return b;
}

static char tmpdir[256];

static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/rwd-tensor-XXXXXX", t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		unlink(path);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char sub[1024];
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		rm_rf(sub);
	}
	closedir(d);
	rmdir(path);
}

static void teardown_tmp(void)
{
	if (tmpdir[0])
		rm_rf(tmpdir);
	tmpdir[0] = '\0';
}

static const char *tmp_path(const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", tmpdir, rel);
	return buf;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static void write_st(const char *path, const char *header, const void *data, size_t dlen)
{
	blob b = make_blob(header, data, dlen);
	write_file(path, b.p, b.n);
	free(b.p);
}

static void write_text(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

static void print_err(const char *what, const rwd_error *e)
{
	char buf[1024];
	printf("  %s -> %s [%s]\n", what, rwd_error_format(e, buf, sizeof(buf)), rwd_strerror(e->code));
}

/*
 * The PyTorch-written files, made once for the "torch" test case by an
 * unchecked fixture (in the parent, before check forks the tests): one
 * interpreter start instead of one per test.
 */
static char torch_dir[256];
static const char *torch_skip; /* why the torch tests skip, or NULL */

static const char torch_script[] =
	"import sys\n"
	"try:\n"
	"    import torch, safetensors_io as st\n"
	"except ImportError as e:\n"
	"    print('SKIP: PyTorch oracle unavailable:', e); sys.exit(77)\n"
	"d = sys.argv[1]\n"
	/* every F16 and BF16 bit pattern, and torch's float32 of each */
	"bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)\n"
	"h = bits.view(torch.float16); b = bits.view(torch.bfloat16)\n"
	"st.save({'h': h, 'b': b, 'hf': h.float(), 'bf': b.float()}, d + '/half.safetensors')\n"
	/* mixed dtypes, rank 0, zero size, metadata; and the same as float32 */
	"g = torch.Generator().manual_seed(7)\n"
	"t = {'w32': torch.randn(3, 5, generator=g),\n"
	"     'w16': torch.randn(4, 3, generator=g).half(),\n"
	"     'wbf': torch.randn(2, 2, 3, generator=g).bfloat16(),\n"
	"     'pos': torch.arange(77, dtype=torch.int64).reshape(1, 77),\n"
	"     'scale': torch.tensor(4.6052),\n"
	"     'empty': torch.zeros(0, 768),\n"
	"     'mask': torch.tensor([1, 0, 1], dtype=torch.uint8)}\n"
	"st.save(t, d + '/mixed.safetensors', metadata={'format': 'pt'})\n"
	"st.save({k: v.float() for k, v in t.items()}, d + '/ref.safetensors')\n";

static void torch_setup(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(torch_dir, sizeof(torch_dir), "%s/rwd-tensor-torch-XXXXXX", t && *t ? t : "/tmp");
	torch_skip = NULL;
	if (!mkdtemp(torch_dir)) {
		torch_dir[0] = '\0';
		torch_skip = "cannot create a temporary folder";
		return;
	}
	if (access(PY, X_OK) != 0) {
		torch_skip = PY " not found, PyTorch oracle unavailable";
		return;
	}
	char path[512], cmd[2048];
	snprintf(path, sizeof(path), "%s/gen.py", torch_dir);
	FILE *f = fopen(path, "w");
	if (!f || fputs(torch_script, f) < 0 || fclose(f) != 0) {
		torch_skip = "cannot write the generator script";
		return;
	}
	snprintf(cmd, sizeof(cmd), "PYTHONPATH='%s/tools' " PY " '%s' '%s'", rwd_source_root(),
		path, torch_dir);
	int rc = system(cmd);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77)
		torch_skip = "PyTorch (Debian python3-torch) cannot be imported by " PY;
	else if (rc != 0)
		torch_skip = "FAIL"; /* the tests then fail, they do not skip */
}

static void torch_teardown(void)
{
	if (torch_dir[0])
		rm_rf(torch_dir);
	torch_dir[0] = '\0';
}

/* 1 when the torch files are there; else skips the test (rwd_skip) and says
 * why, or fails it if the generator broke. */
static int torch_ready(const char *test)
{
	if (!torch_skip)
		return 1;
	ck_assert_msg(strcmp(torch_skip, "FAIL") != 0, "the PyTorch generator script failed");
	rwd_skip(test, torch_skip);
	return 0;
}

static const char *torch_path(const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", torch_dir, rel);
	return buf;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Parse the blob from memory, then from a file through mmap and read(): all three must agree. */
static int open_three_ways(const char *header, const void *data, size_t dlen, rwd_error *err,
	int *codes)
{
	blob b = make_blob(header, data, dlen);
	rwd_weights *w = NULL;
	codes[0] = rwd_safetensors_parse(b.p, b.n, "mem.safetensors", NULL, &w, err);
	rwd_weights_free(w);
	char path[512];
	write_file(tmp_path("x.safetensors", path, sizeof(path)), b.p, b.n);
	free(b.p);
	rwd_weights_params p = rwd_weights_default_params();
	rwd_error e2;
	codes[1] = rwd_weights_open(path, &p, &w, &e2);
	rwd_weights_free(w);
	p.use_mmap = false;
	codes[2] = rwd_weights_open(path, &p, &w, &e2);
	ck_assert_str_eq(e2.object, err->object);
	rwd_weights_free(w);
	return codes[0];
}

/* ---- dtypes -------------------------------------------------------------- */

START_TEST(dtype_table)
{
	for (int i = 1; i < RWD_DTYPE_COUNT_; i++) {
		rwd_dtype d = (rwd_dtype)i;
		ck_assert_int_eq(rwd_dtype_from_name(rwd_dtype_name(d)), d);
		ck_assert_uint_gt(rwd_dtype_bits(d), 0);
	}
	ck_assert_int_eq(rwd_dtype_from_name("f32"), RWD_DTYPE_INVALID);
	ck_assert_int_eq(rwd_dtype_from_name("F33"), RWD_DTYPE_INVALID);
	ck_assert_int_eq(rwd_dtype_from_name(""), RWD_DTYPE_INVALID);
	ck_assert_int_eq(rwd_dtype_from_name(NULL), RWD_DTYPE_INVALID);
	ck_assert_str_eq(rwd_dtype_name((rwd_dtype)999), "INVALID");
	ck_assert_uint_eq(rwd_dtype_size(RWD_DTYPE_F32), 4);
	ck_assert_uint_eq(rwd_dtype_size(RWD_DTYPE_BF16), 2);
	ck_assert_uint_eq(rwd_dtype_size(RWD_DTYPE_I64), 8);
	ck_assert_uint_eq(rwd_dtype_size(RWD_DTYPE_BOOL), 1);
	ck_assert_uint_eq(rwd_dtype_size(RWD_DTYPE_F4), 0);
	ck_assert_uint_eq(rwd_dtype_bits(RWD_DTYPE_F4), 4);
	ck_assert_uint_eq(rwd_dtype_bits(RWD_DTYPE_F6_E3M2), 6);
	ck_assert(rwd_dtype_is_f32_convertible(RWD_DTYPE_F16));
	ck_assert(!rwd_dtype_is_f32_convertible(RWD_DTYPE_I64));
	char buf[64];
	int64_t sh[3] = { 2, -1, 7 };
	ck_assert_str_eq(rwd_tensor_shape_str(3, sh, buf, sizeof(buf)), "[2, *, 7]");
	ck_assert_str_eq(rwd_tensor_shape_str(0, sh, buf, sizeof(buf)), "[]");
}
END_TEST

/*
 * Every F16 and BF16 bit pattern, converted by PyTorch (.float()) and by us;
 * compared bit for bit (NaNs included: payload and quieting must match).
 */
START_TEST(half_conversion_matches_torch_exhaustively)
{
	if (!torch_ready(__func__))
		return;
	char path[512];
	torch_path("half.safetensors", path, sizeof(path));
	rwd_weights *w;
	rwd_error err;
	ck_assert_int_eq(rwd_weights_open(path, NULL, &w, &err), 0);
	const char *pairs[2][2] = { { "h", "hf" }, { "b", "bf" } };
	for (int k = 0; k < 2; k++) {
		const float *ours, *theirs;
		int64_t shape[1] = { 65536 };
		ck_assert_int_eq(rwd_weights_get_f32(w, pairs[k][0], 1, shape, &ours, &err), 0);
		ck_assert_int_eq(rwd_weights_get_f32(w, pairs[k][1], 1, shape, &theirs, &err), 0);
		const rwd_tensor *raw = rwd_weights_find(w, pairs[k][0]);
		ck_assert_int_eq(raw->dtype, k ? RWD_DTYPE_BF16 : RWD_DTYPE_F16);
		ck_assert_uint_eq(raw->nbytes, 2 * 65536);
		int mismatches = 0, nans = 0, subnormals = 0;
		for (size_t i = 0; i < 65536; i++) {
			uint16_t hb;
			memcpy(&hb, (const unsigned char *)raw->data + 2 * i, 2);
			float one = k ? rwd_bf16_to_f32(hb) : rwd_f16_to_f32(hb);
			nans += isnan(theirs[i]);
			subnormals += !k && (hb & 0x7c00) == 0 && (hb & 0x3ff) != 0;
			if (f32_bits(ours[i]) != f32_bits(theirs[i]) || f32_bits(one) != f32_bits(ours[i])) {
				if (mismatches++ < 5)
					printf("  %s 0x%04x: ours 0x%08x torch 0x%08x\n", pairs[k][0], hb,
						f32_bits(ours[i]), f32_bits(theirs[i]));
			}
		}
		printf("%s: 65536 patterns (%d NaN, %d F16 subnormal), %d bit mismatches vs torch\n",
			k ? "BF16" : "F16", nans, subnormals, mismatches);
		ck_assert_int_eq(mismatches, 0);
	}
	ck_assert_uint_eq(rwd_weights_owned_bytes(w), 2 * 65536 * 4);
	rwd_weights_free(w);

	/* kept raw: no F32 view, a precise refusal, the row converters still agree */
	rwd_weights_params p = rwd_weights_default_params();
	p.convert_half = false;
	p.use_mmap = false;
	ck_assert_int_eq(rwd_weights_open(path, &p, &w, &err), 0);
	const rwd_tensor *h = rwd_weights_find(w, "h");
	ck_assert_ptr_null(h->f32);
	const float *f;
	ck_assert_int_eq(rwd_weights_get_f32(w, "h", -1, NULL, &f, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "h");
	print_err("F16 kept raw", &err);
	float *row = malloc(65536 * sizeof(float));
	rwd_dtype_f16_to_f32_row(h->data, row, 65536);
	ck_assert_int_eq(memcmp(row, rwd_weights_find(w, "hf")->f32, 65536 * sizeof(float)), 0);
	rwd_dtype_bf16_to_f32_row(rwd_weights_find(w, "b")->data, row, 65536);
	ck_assert_int_eq(memcmp(row, rwd_weights_find(w, "bf")->f32, 65536 * sizeof(float)), 0);
	free(row);
	rwd_weights_free(w);
}
END_TEST

/* A file written by the Python writer: mixed dtypes, rank 0, zero size, metadata. */
START_TEST(python_written_file_matches_torch_values)
{
	if (!torch_ready(__func__))
		return;
	char path[512], ref[512];
	torch_path("mixed.safetensors", path, sizeof(path));
	torch_path("ref.safetensors", ref, sizeof(ref));
	for (int mode = 0; mode < 2; mode++) {
		rwd_weights_params p = rwd_weights_default_params();
		p.use_mmap = mode == 0;
		rwd_weights *w, *r;
		rwd_error err;
		ck_assert_int_eq(rwd_weights_open(path, &p, &w, &err), 0);
		ck_assert_int_eq(rwd_weights_open(ref, NULL, &r, &err), 0);
		ck_assert_uint_eq(rwd_weights_count(w), 7);
		ck_assert_str_eq(rwd_weights_metadata(w, "format"), "pt");
		ck_assert_ptr_null(rwd_weights_metadata(w, "nope"));
		ck_assert_ptr_null(rwd_weights_metadata(r, "format"));
		/* name order */
		for (size_t i = 1; i < rwd_weights_count(w); i++)
			ck_assert_int_lt(strcmp(rwd_weights_at(w, i - 1)->name, rwd_weights_at(w, i)->name), 0);
		ck_assert_ptr_null(rwd_weights_at(w, 7));
		const char *floats[] = { "w32", "w16", "wbf", "scale", "empty" };
		for (int k = 0; k < 5; k++) {
			const rwd_tensor *a = rwd_weights_find(w, floats[k]);
			const rwd_tensor *b = rwd_weights_find(r, floats[k]);
			ck_assert_ptr_nonnull(a);
			ck_assert_int_eq(a->ndim, b->ndim);
			ck_assert_int_eq(a->numel, b->numel);
			for (int d = 0; d < a->ndim; d++)
				ck_assert_int_eq(a->shape[d], b->shape[d]);
			ck_assert_ptr_nonnull(a->f32);
			ck_assert_uint_eq((uintptr_t)a->f32 % 4, 0);
			ck_assert_int_eq(memcmp(a->f32, b->f32, (size_t)a->numel * 4), 0);
		}
		const rwd_tensor *s = rwd_weights_find(w, "scale");
		ck_assert_int_eq(s->ndim, 0);
		ck_assert_int_eq(s->numel, 1);
		ck_assert_uint_eq(s->nbytes, 4);
		const float *sv;
		ck_assert_int_eq(rwd_weights_get_f32(w, "scale", 0, NULL, &sv, &err), 0);
		ck_assert_float_eq(*sv, rwd_weights_find(r, "scale")->f32[0]);
		const rwd_tensor *e = rwd_weights_find(w, "empty");
		ck_assert_int_eq(e->numel, 0);
		ck_assert_uint_eq(e->nbytes, 0);
		int64_t es[2] = { 0, 768 };
		const float *ev;
		ck_assert_int_eq(rwd_weights_get_f32(w, "empty", 2, es, &ev, &err), 0);
		const rwd_tensor *pos = rwd_weights_find(w, "pos");
		ck_assert_int_eq(pos->dtype, RWD_DTYPE_I64);
		ck_assert_ptr_null(pos->f32);
		ck_assert_uint_eq((uintptr_t)pos->data % 8, 0);
		const int64_t *pv = pos->data;
		for (int i = 0; i < 77; i++)
			ck_assert_int_eq(pv[i], i);
		const float *bad;
		ck_assert_int_eq(rwd_weights_get_f32(w, "pos", 2, NULL, &bad, &err), RWD_E_UNSUPPORTED);
		ck_assert_str_eq(err.object, "pos");
		ck_assert_ptr_nonnull(strstr(err.msg, "I64"));
		const rwd_tensor *m = rwd_weights_find(w, "mask");
		ck_assert_int_eq(m->dtype, RWD_DTYPE_U8);
		ck_assert_int_eq(((const unsigned char *)m->data)[0], 1);
		ck_assert_int_eq(((const unsigned char *)m->data)[1], 0);
		/* stored bytes: 15*4 + 12*2 + 12*2 + 77*8 + 4 + 0 + 3 */
		ck_assert_uint_eq(rwd_weights_total_bytes(w), 60 + 24 + 24 + 616 + 4 + 3);
		rwd_weights_free(w);
		rwd_weights_free(r);
	}
}
END_TEST

/* ---- hand-made valid files ---------------------------------------------- */

START_TEST(whitespace_padded_header_and_unaligned_data)
{
	make_tmpdir();
	/* Leading and trailing JSON whitespace; 3 header bytes of padding push
	 * the data section off any alignment: F32 at data offset 0 lands at an
	 * odd file offset, the I64 after 2 U8 bytes is misaligned too. */
	float vals[3] = { 1.5f, -2.25f, 1e-30f };
	int64_t iv[2] = { -7, 1LL << 40 };
	unsigned char data[12 + 2 + 16];
	memcpy(data, vals, 12);
	data[12] = 9;
	data[13] = 8;
	memcpy(data + 14, iv, 16);
	const char *hdr =
		" \n\t{\"__metadata__\": {\"format\": \"pt\", \"note\": \"\\u00e9\"},\r\n"
		"\"v\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12], \"extra\": true},\n"
		"\"i\": {\"dtype\": \"I64\", \"shape\": [2, 1], \"data_offsets\": [14, 30]},\n"
		"\"u\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [12, 14]}}\r\n\t   ";
	ck_assert_uint_ne((8 + strlen(hdr)) % 4, 0);
	blob b = make_blob(hdr, data, sizeof(data));
	/* in memory, from a deliberately odd address as well */
	unsigned char *odd = malloc(b.n + 1);
	memcpy(odd + 1, b.p, b.n);
	const unsigned char *bufs[2] = { b.p, odd + 1 };
	for (int k = 0; k < 2; k++) {
		rwd_weights *w;
		rwd_error err;
		ck_assert_int_eq(rwd_safetensors_parse(bufs[k], b.n, NULL, NULL, &w, &err), 0);
		const float *v;
		int64_t sh[1] = { 3 };
		ck_assert_int_eq(rwd_weights_get_f32(w, "v", 1, sh, &v, &err), 0);
		ck_assert_uint_eq((uintptr_t)v % 4, 0);
		ck_assert_int_eq(memcmp(v, vals, 12), 0);
		const rwd_tensor *i;
		int64_t ish[2] = { -1, 1 };
		ck_assert_int_eq(rwd_weights_get(w, "i", 2, ish, &i, &err), 0);
		ck_assert_uint_eq((uintptr_t)i->data % 8, 0);
		ck_assert_int_eq(((const int64_t *)i->data)[1], 1LL << 40);
		ck_assert_uint_gt(rwd_weights_owned_bytes(w), 0);
		ck_assert_str_eq(rwd_weights_metadata(w, "note"), "\xc3\xa9");
		ck_assert_str_eq(rwd_weights_path(w), "<memory>");
		ck_assert_str_eq(rwd_weights_find(w, "u")->file, "<memory>");
		rwd_weights_free(w);
	}
	/* from a file, mapped and read */
	char path[512];
	write_file(tmp_path("ws.safetensors", path, sizeof(path)), b.p, b.n);
	for (int mode = 0; mode < 2; mode++) {
		rwd_weights_params p = rwd_weights_default_params();
		p.use_mmap = mode == 0;
		rwd_weights *w;
		rwd_error err;
		ck_assert_int_eq(rwd_weights_open(path, &p, &w, &err), 0);
		ck_assert_int_eq(memcmp(rwd_weights_find(w, "v")->f32, vals, 12), 0);
		ck_assert_int_eq(((const int64_t *)rwd_weights_find(w, "i")->data)[0], -7);
		ck_assert_str_eq(rwd_weights_find(w, "v")->file, path);
		rwd_weights_free(w);
	}
	free(odd);
	free(b.p);
	teardown_tmp();
}
END_TEST

START_TEST(empty_scalar_zero_size_and_other_dtypes)
{
	rwd_weights *w;
	rwd_error err;
	/* the smallest valid file */
	blob b = make_blob("{}", NULL, 0);
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, NULL, NULL, &w, &err), 0);
	ck_assert_uint_eq(rwd_weights_count(w), 0);
	ck_assert_uint_eq(rwd_weights_total_bytes(w), 0);
	ck_assert_ptr_null(rwd_weights_find(w, "x"));
	rwd_weights_free(w);
	free(b.p);

	/* zero-size tensors sharing offsets, a scalar, F8/F4/BOOL stored but not float */
	unsigned char data[4 + 2 + 1 + 3] = { 0, 0, 0x80, 0x3f, 0x00, 0x3c, 0x38, 0x12, 1, 0 };
	b = make_blob("{\"z0\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]},"
		"\"z1\": {\"dtype\": \"BF16\", \"shape\": [4, 0, 9], \"data_offsets\": [0, 0]},"
		"\"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},"
		"\"h\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [4, 6]},"
		"\"z2\": {\"dtype\": \"F16\", \"shape\": [0, 3], \"data_offsets\": [6, 6]},"
		"\"f8\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [6, 7]},"
		"\"f4\": {\"dtype\": \"F4\", \"shape\": [2], \"data_offsets\": [7, 8]},"
		"\"ok\": {\"dtype\": \"BOOL\", \"shape\": [2], \"data_offsets\": [8, 10]}}",
		data, sizeof(data));
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, NULL, NULL, &w, &err), 0);
	ck_assert_uint_eq(rwd_weights_count(w), 8);
	const float *f;
	ck_assert_int_eq(rwd_weights_get_f32(w, "s", 0, NULL, &f, &err), 0);
	ck_assert_float_eq(*f, 1.0f);
	ck_assert_int_eq(rwd_weights_get_f32(w, "h", 1, NULL, &f, &err), 0);
	ck_assert_float_eq(*f, 1.0f);
	ck_assert_int_eq(rwd_weights_get_f32(w, "z1", 3, NULL, &f, &err), 0);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rwd_weights_find(w, "z1")->numel, 0);
	ck_assert_int_eq(rwd_weights_get_f32(w, "z2", 2, NULL, &f, &err), 0);
	ck_assert_int_eq(rwd_weights_get_f32(w, "f8", 1, NULL, &f, &err), RWD_E_UNSUPPORTED);
	ck_assert_str_eq(err.object, "f8");
	ck_assert_ptr_nonnull(strstr(err.msg, "F8_E4M3"));
	print_err("F8 as float", &err);
	ck_assert_int_eq(rwd_weights_find(w, "f4")->numel, 2);
	ck_assert_uint_eq(rwd_weights_find(w, "f4")->nbytes, 1);
	ck_assert_int_eq(rwd_weights_get_f32(w, "ok", 1, NULL, &f, &err), RWD_E_UNSUPPORTED);
	rwd_weights_free(w);
	free(b.p);
}
END_TEST

START_TEST(getter_checks_rank_and_shape)
{
	float d[6] = { 0 };
	blob b = make_blob("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}",
		d, sizeof(d));
	rwd_weights *w;
	rwd_error err;
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, "m.safetensors", NULL, &w, &err), 0);
	const float *f = NULL;
	int64_t ok[2] = { 2, 3 }, any[2] = { -1, 3 }, bad[2] = { 3, 2 }, r3[3] = { 2, 3, 1 };
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 2, ok, &f, &err), 0);
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 2, any, &f, &err), 0);
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", -1, NULL, &f, &err), 0);
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 2, NULL, &f, &err), 0);
	f = NULL;
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 2, bad, &f, &err), RWD_E_INVALID);
	ck_assert_ptr_null(f);
	ck_assert_str_eq(err.file, "m.safetensors");
	ck_assert_str_eq(err.object, "w");
	ck_assert_str_eq(err.msg, "shape is [2, 3], expected [3, 2]");
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 3, r3, &f, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.msg, "shape is [2, 3], expected [2, 3, 1]");
	ck_assert_int_eq(rwd_weights_get_f32(w, "w", 1, NULL, &f, &err), RWD_E_INVALID);
	ck_assert_str_eq(err.msg, "shape is [2, 3], expected rank 1");
	ck_assert_int_eq(rwd_weights_get_f32(w, "nope", 2, ok, &f, &err), RWD_E_NOTFOUND);
	ck_assert_str_eq(err.object, "nope");
	print_err("missing tensor", &err);
	ck_assert_int_eq(rwd_weights_get_f32(NULL, "w", 2, ok, &f, &err), RWD_E_INVALID);
	ck_assert_ptr_null(rwd_weights_find(NULL, "w"));
	ck_assert_uint_eq(rwd_weights_count(NULL), 0);
	rwd_weights_free(w);
	rwd_weights_free(NULL);
	free(b.p);
}
END_TEST

/* ---- malformed files ----------------------------------------------------- */

struct bad_case {
	const char *what;
	const char *header;
	size_t dlen;          /* zero bytes of data after the header */
	int code;
	const char *object;   /* expected err.object ("" = none) */
	const char *needle;   /* expected substring of err.msg */
};

static const struct bad_case bad_cases[] = {
	{ "lying offsets (too few bytes for the shape)",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 12,
	  RWD_E_FORMAT, "a", "hold 12 bytes but shape [4] of F32 needs 16" },
	{ "dtype size mismatch (F16 sized as F32)",
	  "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
	  RWD_E_FORMAT, "a", "needs 8" },
	{ "hole between tensors",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
	  RWD_E_FORMAT, "b", "hole" },
	{ "first tensor not at 0",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	  RWD_E_FORMAT, "a", "hole" },
	{ "overlapping tensors",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	  RWD_E_FORMAT, "b", "overlap" },
	{ "the same bytes twice",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "b", "overlap" },
	{ "end before begin",
	  "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
	  RWD_E_FORMAT, "a", "end before they begin" },
	{ "trailing bytes after the data",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
	  RWD_E_FORMAT, "a", "4 trailing bytes" },
	{ "bytes but no tensors",
	  "{}", 3, RWD_E_FORMAT, "", "3 trailing bytes" },
	{ "data past the end of the file (truncated)",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10,
	  RWD_E_FORMAT, "a", "past the end" },
	{ "shape product overflows int64",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_OVERFLOW, "a", "overflow" },
	{ "overflow before a zero dimension still counts",
	  "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0,
	  RWD_E_OVERFLOW, "a", "overflow" },
	{ "element bits overflow",
	  "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8,
	  RWD_E_OVERFLOW, "a", "overflow" },
	{ "huge shape, small offsets",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "needs 4398046511104" },
	{ "dimension beyond int64",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551617],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "", "not valid JSON" },
	{ "negative dimension",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "shape[0]" },
	{ "fractional dimension",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "shape[0]" },
	{ "negative offset",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
	  RWD_E_FORMAT, "a", "non-negative" },
	{ "three offsets",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
	  RWD_E_FORMAT, "a", "3 items" },
	{ "missing dtype",
	  "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "\"dtype\" is missing" },
	{ "missing shape",
	  "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "\"shape\" is missing" },
	{ "shape not an array",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "\"shape\" is an integer" },
	{ "offsets missing",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
	  RWD_E_FORMAT, "a", "\"data_offsets\" is missing" },
	{ "unknown dtype",
	  "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "unknown dtype \"F33\"" },
	{ "lower-case dtype",
	  "{\"a\":{\"dtype\":\"float32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "unknown dtype" },
	{ "dtype not a string",
	  "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "\"dtype\" is an integer" },
	{ "sub-byte tensor not a whole number of bytes",
	  "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
	  RWD_E_FORMAT, "a", "whole number of bytes" },
	{ "entry not an object",
	  "{\"a\":[1,2]}", 0, RWD_E_FORMAT, "a", "not an object" },
	{ "duplicate tensor names (long, so jansson cannot quote it)",
	  "{\"text_model.encoder.layers.0.self_attn.q_proj.weight\":"
	  "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"text_model.encoder.layers.0.self_attn.q_proj.weight\":"
	  "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	  RWD_E_FORMAT, "text_model.encoder.layers.0.self_attn.q_proj.weight", "duplicate key" },
	{ "duplicate key with escapes",
	  "{\"a\\\"b\\\\\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}, \"a\\\"b\\\\\" :{}}", 4,
	  RWD_E_FORMAT, "a\"b\\", "duplicate key" },
	{ "duplicate field inside an entry",
	  "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	  RWD_E_FORMAT, "a", "duplicate key \"dtype\" inside \"a\"" },
	{ "duplicate field in a tensor with an empty name",
	  "{\"\":{\"shape\":[1],\"shape\":[1]}}", 0,
	  RWD_E_FORMAT, "", "duplicate key \"shape\" inside \"\"" },
	{ "duplicate metadata key",
	  "{\"__metadata__\":{\"format\":\"pt\",\"format\":\"np\"}}", 0,
	  RWD_E_FORMAT, "__metadata__", "duplicate key \"format\"" },
	{ "header is an array",
	  "[{\"a\":1}]", 0, RWD_E_FORMAT, "", "is an array, not an object" },
	{ "header is a number",
	  "7", 0, RWD_E_FORMAT, "", "not valid JSON" },
	{ "header is empty text",
	  "", 0, RWD_E_FORMAT, "", "not valid JSON" },
	{ "garbage after the object",
	  "{} x", 0, RWD_E_FORMAT, "", "not valid JSON" },
	{ "control byte padding",
	  "{}\x01", 0, RWD_E_FORMAT, "", "not valid JSON" },
	{ "invalid UTF-8 in a name",
	  "{\"\xff\":{}}", 0, RWD_E_FORMAT, "", "not valid JSON" },
	{ "metadata value not a string",
	  "{\"__metadata__\":{\"format\":\"pt\",\"total\":3}}", 0,
	  RWD_E_FORMAT, "__metadata__", "\"total\" is an integer" },
	{ "metadata not an object",
	  "{\"__metadata__\":\"pt\"}", 0, RWD_E_FORMAT, "__metadata__", "not be a string" },
	{ "metadata nested",
	  "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, RWD_E_FORMAT, "__metadata__", "object" },
	{ "rank above the limit",
	  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	  "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
	  RWD_E_LIMIT, "a", "rank 65" },
};

START_TEST(malformed_headers_are_refused_precisely)
{
	make_tmpdir();
	static unsigned char zeros[64];
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		rwd_error err;
		int codes[3];
		open_three_ways(c->header, zeros, c->dlen, &err, codes);
		print_err(c->what, &err);
		ck_assert_msg(codes[0] == c->code, "%s: code %d, want %d", c->what, codes[0], c->code);
		ck_assert_int_eq(codes[1], c->code);
		ck_assert_int_eq(codes[2], c->code);
		ck_assert_msg(strcmp(err.object, c->object) == 0, "%s: object \"%s\", want \"%s\"",
			c->what, err.object, c->object);
		ck_assert_msg(strstr(err.msg, c->needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
			c->what, err.msg, c->needle);
		ck_assert_str_eq(err.file, "mem.safetensors");
	}
	teardown_tmp();
}
END_TEST

START_TEST(json_errors_carry_line_and_column)
{
	blob b = make_blob("{\"a\": {\"dtype\": \"F32\",\n  \"shape\": [1,],\n}}", NULL, 0);
	rwd_weights *w = (rwd_weights *)&b; /* must be reset to NULL on failure */
	rwd_error err;
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, NULL, NULL, &w, &err), RWD_E_FORMAT);
	ck_assert_ptr_null(w);
	print_err("bad JSON", &err);
	ck_assert_int_eq(err.line, 2);
	ck_assert_int_gt(err.column, 0);
	ck_assert_int_gt(err.offset, 8);
	free(b.p);

	/* the duplicate's position too */
	b = make_blob("{\"x\":{},\n\"x\":{}}", NULL, 0);
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, NULL, NULL, &w, &err), RWD_E_FORMAT);
	ck_assert_str_eq(err.object, "x");
	ck_assert_int_eq(err.line, 2);
	free(b.p);
}
END_TEST

START_TEST(truncated_and_oversized_headers)
{
	make_tmpdir();
	rwd_weights *w;
	rwd_error err;
	unsigned char raw[16] = { 0 };
	/* shorter than the length field */
	for (size_t n = 0; n < 8; n++) {
		ck_assert_int_eq(rwd_safetensors_parse(raw, n, NULL, NULL, &w, &err), RWD_E_FORMAT);
		ck_assert_ptr_nonnull(strstr(err.msg, "too short"));
	}
	/* header length past the end of the file */
	raw[0] = 9;
	memcpy(raw + 8, "{}      ", 8);
	ck_assert_int_eq(rwd_safetensors_parse(raw, 16, NULL, NULL, &w, &err), RWD_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "runs past the end"));
	print_err("header past EOF", &err);
	/* just above the reference reader's limit, and absurd lengths */
	const uint64_t lens[3] = { RWD_SAFETENSORS_MAX_HEADER + 1ull, 1ull << 63, UINT64_MAX };
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 8; i++)
			raw[i] = (unsigned char)(lens[k] >> (8 * i));
		ck_assert_int_eq(rwd_safetensors_parse(raw, 16, NULL, NULL, &w, &err), RWD_E_LIMIT);
		ck_assert_ptr_nonnull(strstr(err.msg, "exceeds the limit"));
	}
	print_err("header too big", &err);
	/* NUL padding is not JSON whitespace (the reference reader refuses it too) */
	unsigned char nul[16] = { 8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0, 0, 0, 0, 0 };
	ck_assert_int_eq(rwd_safetensors_parse(nul, 16, NULL, NULL, &w, &err), RWD_E_FORMAT);
	print_err("NUL padding", &err);
	nul[10] = ' ';
	for (int i = 11; i < 16; i++)
		nul[i] = "\t\r\n  "[i - 11];
	ck_assert_int_eq(rwd_safetensors_parse(nul, 16, NULL, NULL, &w, &err), 0);
	rwd_weights_free(w);
	/* a lower configured limit */
	rwd_weights_params p = rwd_weights_default_params();
	p.max_header_bytes = 4;
	blob b = make_blob("{}      ", NULL, 0);
	ck_assert_int_eq(rwd_safetensors_parse(b.p, b.n, NULL, &p, &w, &err), RWD_E_LIMIT);

	/* every truncation of a valid file fails cleanly, in memory and on disk */
	float d[4] = { 1, 2, 3, 4 };
	blob full = make_blob("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
		d, sizeof(d));
	ck_assert_int_eq(rwd_safetensors_parse(full.p, full.n, NULL, NULL, &w, &err), 0);
	rwd_weights_free(w);
	char path[512];
	tmp_path("t.safetensors", path, sizeof(path));
	for (size_t n = 0; n < full.n; n++) {
		ck_assert_int_ne(rwd_safetensors_parse(full.p, n, NULL, NULL, &w, &err), 0);
		ck_assert_ptr_null(w);
		write_file(path, full.p, n);
		ck_assert_int_eq(rwd_weights_open(path, NULL, &w, &err), RWD_E_FORMAT);
		ck_assert_str_eq(err.file, path);
		p = rwd_weights_default_params();
		p.use_mmap = false;
		ck_assert_int_eq(rwd_weights_open(path, &p, &w, &err), RWD_E_FORMAT);
	}
	print_err("truncated data", &err);
	ck_assert_str_eq(err.object, "w");
	free(full.p);
	free(b.p);

	/* not there, not a file */
	ck_assert_int_eq(rwd_weights_open("/nonexistent/x.safetensors", NULL, &w, &err), RWD_E_NOTFOUND);
	ck_assert_int_eq(rwd_weights_open("/dev/null", NULL, &w, &err), RWD_E_INVALID);
	ck_assert_int_eq(rwd_weights_open(NULL, NULL, &w, &err), RWD_E_INVALID);
	teardown_tmp();
}
END_TEST

/* ---- folders and shards -------------------------------------------------- */

static const char *shard_a_hdr =
	"{\"__metadata__\":{\"format\":\"pt\"},"
	"\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
	"\"a.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]}}";
static const char *shard_b_hdr =
	"{\"__metadata__\":{\"format\":\"other\",\"shard\":\"b\"},"
	"\"b.weight\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
	"\"unlisted\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}";

static void write_shards(void)
{
	char path[512];
	unsigned char a[20], b[8];
	float fa[4] = { 1, 2, 3, 4 };
	memcpy(a, fa, 16);
	a[16] = 0x80; a[17] = 0x3f; a[18] = 0x00; a[19] = 0xc0; /* bf16 1.0, -2.0 */
	b[0] = 0x00; b[1] = 0x3c; b[2] = 0x00; b[3] = 0x40; b[4] = 0x01; b[5] = 0x00; /* 1, 2, 2^-24 */
	b[6] = 1; b[7] = 2;
	write_st(tmp_path("model-00001-of-00002.safetensors", path, sizeof(path)), shard_a_hdr, a, 20);
	write_st(tmp_path("model-00002-of-00002.safetensors", path, sizeof(path)), shard_b_hdr, b, 8);
}

static void write_index(const char *weight_map)
{
	char path[512], text[2048];
	snprintf(text, sizeof(text), "{\"metadata\": {\"total_size\": 28}, \"weight_map\": %s}",
		weight_map);
	write_text(tmp_path("model.safetensors.index.json", path, sizeof(path)), text);
}

static const char *good_map =
	"{\"a.weight\": \"model-00001-of-00002.safetensors\","
	" \"a.bias\": \"model-00001-of-00002.safetensors\","
	" \"b.weight\": \"model-00002-of-00002.safetensors\"}";

START_TEST(sharded_folder_loads_every_mapped_tensor)
{
	make_tmpdir();
	write_shards();
	write_index(good_map);
	char idx[512];
	tmp_path("model.safetensors.index.json", idx, sizeof(idx));
	const char *paths[2] = { tmpdir, idx };
	for (int mode = 0; mode < 4; mode++) {
		rwd_weights_params p = rwd_weights_default_params();
		p.use_mmap = mode & 1;
		rwd_weights *w;
		rwd_error err;
		int rc = rwd_weights_open(paths[mode >> 1], &p, &w, &err);
		if (rc)
			print_err("sharded", &err);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(rwd_weights_count(w), 3);
		ck_assert_ptr_null(rwd_weights_find(w, "unlisted"));
		const float *f;
		int64_t s2[2] = { 2, 2 };
		ck_assert_int_eq(rwd_weights_get_f32(w, "a.weight", 2, s2, &f, &err), 0);
		ck_assert_float_eq(f[3], 4.0f);
		ck_assert_int_eq(rwd_weights_get_f32(w, "a.bias", 1, NULL, &f, &err), 0);
		ck_assert_float_eq(f[0], 1.0f);
		ck_assert_float_eq(f[1], -2.0f);
		ck_assert_int_eq(rwd_weights_get_f32(w, "b.weight", 1, NULL, &f, &err), 0);
		ck_assert_float_eq(f[1], 2.0f);
		ck_assert_float_eq(f[2], ldexpf(1.0f, -24));
		ck_assert_ptr_nonnull(strstr(rwd_weights_find(w, "b.weight")->file, "model-00002-of-00002"));
		ck_assert_ptr_nonnull(strstr(rwd_weights_find(w, "a.bias")->file, "model-00001-of-00002"));
		/* merged metadata, the first shard winning */
		ck_assert_str_eq(rwd_weights_metadata(w, "format"), "pt");
		ck_assert_str_eq(rwd_weights_metadata(w, "shard"), "b");
		ck_assert_uint_eq(rwd_weights_total_bytes(w), 16 + 4 + 6);
		rwd_weights_free(w);
	}
	/* a folder with model.safetensors uses it and ignores the index */
	char path[512];
	float one = 1.0f;
	write_st(tmp_path("model.safetensors", path, sizeof(path)),
		"{\"single\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", &one, 4);
	rwd_weights *w;
	rwd_error err;
	ck_assert_int_eq(rwd_weights_open(tmpdir, NULL, &w, &err), 0);
	ck_assert_uint_eq(rwd_weights_count(w), 1);
	ck_assert_ptr_nonnull(rwd_weights_find(w, "single"));
	rwd_weights_free(w);
	teardown_tmp();
}
END_TEST

struct shard_case {
	const char *what;
	const char *index;   /* whole index text, or NULL: {"weight_map": map} */
	const char *map;
	int code;
	const char *object;
	const char *needle;
};

static const struct shard_case shard_cases[] = {
	{ "tensor missing from its shard", NULL,
	  "{\"a.weight\": \"model-00001-of-00002.safetensors\","
	  " \"b.weight\": \"model-00001-of-00002.safetensors\"}",
	  RWD_E_NOTFOUND, "b.weight", "missing from this shard" },
	{ "path traversal", NULL, "{\"a.weight\": \"../model-00001-of-00002.safetensors\"}",
	  RWD_E_INVALID, "a.weight", "plain file name" },
	{ "absolute path", NULL, "{\"a.weight\": \"/etc/passwd\"}",
	  RWD_E_INVALID, "a.weight", "plain file name" },
	{ "subfolder", NULL, "{\"a.weight\": \"sub/x.safetensors\"}",
	  RWD_E_INVALID, "a.weight", "plain file name" },
	{ "dot-dot alone", NULL, "{\"a.weight\": \"..\"}", RWD_E_INVALID, "a.weight", "plain" },
	{ "empty shard name", NULL, "{\"a.weight\": \"\"}", RWD_E_INVALID, "a.weight", "plain" },
	{ "backslash", NULL, "{\"a.weight\": \"..\\\\x\"}", RWD_E_INVALID, "a.weight", "plain" },
	{ "shard file absent", NULL, "{\"a.weight\": \"model-00009-of-00009.safetensors\"}",
	  RWD_E_NOTFOUND, "", "cannot open" },
	{ "shard name not a string", NULL, "{\"a.weight\": 1}",
	  RWD_E_FORMAT, "a.weight", "not a shard file name" },
	{ "weight_map missing", "{\"metadata\": {}}", NULL,
	  RWD_E_FORMAT, "weight_map", "missing" },
	{ "weight_map an array", "{\"weight_map\": []}", NULL,
	  RWD_E_FORMAT, "weight_map", "array" },
	{ "metadata a string", "{\"metadata\": \"x\", \"weight_map\": {}}", NULL,
	  RWD_E_FORMAT, "metadata", "string" },
	{ "index not JSON", "{\"weight_map\": {", NULL, RWD_E_FORMAT, "", "not valid JSON" },
	{ "index an array", "[]", NULL, RWD_E_FORMAT, "", "array" },
	{ "duplicate tensor in the index", NULL,
	  "{\"a.weight\": \"model-00001-of-00002.safetensors\","
	  " \"a.weight\": \"model-00002-of-00002.safetensors\"}",
	  RWD_E_FORMAT, "a.weight", "duplicate key" },
};

START_TEST(sharded_folder_errors_name_file_and_tensor)
{
	make_tmpdir();
	write_shards();
	for (size_t i = 0; i < sizeof(shard_cases) / sizeof(shard_cases[0]); i++) {
		const struct shard_case *c = &shard_cases[i];
		char path[512];
		if (c->index)
			write_text(tmp_path("model.safetensors.index.json", path, sizeof(path)), c->index);
		else
			write_index(c->map);
		rwd_weights *w;
		rwd_error err;
		int rc = rwd_weights_open(tmpdir, NULL, &w, &err);
		print_err(c->what, &err);
		ck_assert_msg(rc == c->code, "%s: code %d, want %d", c->what, rc, c->code);
		ck_assert_ptr_null(w);
		ck_assert_msg(strcmp(err.object, c->object) == 0, "%s: object \"%s\", want \"%s\"",
			c->what, err.object, c->object);
		ck_assert_msg(strstr(err.msg, c->needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
			c->what, err.msg, c->needle);
		ck_assert_ptr_nonnull(strstr(err.file, tmpdir));
	}

	/* a malformed shard: the error names the shard and its tensor */
	char path[512];
	unsigned char z[8] = { 0 };
	write_st(tmp_path("model-00002-of-00002.safetensors", path, sizeof(path)),
		"{\"b.weight\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", z, 8);
	write_index(good_map);
	rwd_weights *w;
	rwd_error err;
	ck_assert_int_eq(rwd_weights_open(tmpdir, NULL, &w, &err), RWD_E_FORMAT);
	ck_assert_str_eq(err.file, path);
	ck_assert_str_eq(err.object, "b.weight");
	print_err("bad shard", &err);

	/* an index over its size limit */
	rwd_weights_params p = rwd_weights_default_params();
	p.max_index_bytes = 16;
	ck_assert_int_eq(rwd_weights_open(tmpdir, &p, &w, &err), RWD_E_LIMIT);
	/* too many shards */
	write_shards();
	p = rwd_weights_default_params();
	p.max_shards = 1;
	ck_assert_int_eq(rwd_weights_open(tmpdir, &p, &w, &err), RWD_E_LIMIT);
	print_err("shard limit", &err);

	/* a folder with neither file */
	unlink(tmp_path("model.safetensors.index.json", path, sizeof(path)));
	ck_assert_int_eq(rwd_weights_open(tmpdir, NULL, &w, &err), RWD_E_NOTFOUND);
	print_err("empty folder", &err);
	teardown_tmp();
}
END_TEST

/* ---- the real fixture ---------------------------------------------------- */

START_TEST(aesthetic_fixture_names_and_shapes)
{
	char path[1024];
	if (!rwd_fixture_path("aesthetic/aesthetic-linearMSE.safetensors", path, sizeof(path))) {
		RWD_SKIP("../shared/fixtures/aesthetic/aesthetic-linearMSE.safetensors is absent");
	}
	static const struct {
		const char *name;
		int ndim;
		int64_t shape[2];
	} want[] = {
		{ "layers.0.weight", 2, { 1024, 768 } }, { "layers.0.bias", 1, { 1024 } },
		{ "layers.2.weight", 2, { 128, 1024 } }, { "layers.2.bias", 1, { 128 } },
		{ "layers.4.weight", 2, { 64, 128 } },   { "layers.4.bias", 1, { 64 } },
		{ "layers.6.weight", 2, { 16, 64 } },    { "layers.6.bias", 1, { 16 } },
		{ "layers.7.weight", 2, { 1, 16 } },     { "layers.7.bias", 1, { 1 } },
	};
	for (int mode = 0; mode < 2; mode++) {
		rwd_weights_params p = rwd_weights_default_params();
		p.use_mmap = mode == 0;
		rwd_weights *w;
		rwd_error err;
		int rc = rwd_weights_open(path, &p, &w, &err);
		if (rc)
			print_err("aesthetic", &err);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(rwd_weights_count(w), 10);
		uint64_t bytes = 0;
		for (size_t i = 0; i < 10; i++) {
			const float *f;
			ck_assert_int_eq(rwd_weights_get_f32(w, want[i].name, want[i].ndim, want[i].shape,
				&f, &err), 0);
			const rwd_tensor *t = rwd_weights_find(w, want[i].name);
			ck_assert_int_eq(t->dtype, RWD_DTYPE_F32);
			bytes += t->nbytes;
			/* one assertion per tensor: check marks every assertion through a pipe */
			int64_t finite = 0;
			for (int64_t k = 0; k < t->numel; k++)
				finite += isfinite(f[k]) != 0;
			ck_assert_int_eq(finite, t->numel);
		}
		ck_assert_uint_eq(rwd_weights_total_bytes(w), bytes);
		ck_assert_uint_eq(rwd_weights_owned_bytes(w), 0); /* F32, aligned: used in place */
		if (mode == 0)
			printf("aesthetic head: %zu tensors, %llu bytes\n", rwd_weights_count(w),
				(unsigned long long)bytes);
		rwd_weights_free(w);
	}
}
END_TEST

static Suite *tensor_suite(void)
{
	Suite *s = suite_create("tensor");
	TCase *tc = tcase_create("tensor");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, dtype_table);
	tcase_add_test(tc, whitespace_padded_header_and_unaligned_data);
	tcase_add_test(tc, empty_scalar_zero_size_and_other_dtypes);
	tcase_add_test(tc, getter_checks_rank_and_shape);
	tcase_add_test(tc, malformed_headers_are_refused_precisely);
	tcase_add_test(tc, json_errors_carry_line_and_column);
	tcase_add_test(tc, truncated_and_oversized_headers);
	tcase_add_test(tc, sharded_folder_loads_every_mapped_tensor);
	tcase_add_test(tc, sharded_folder_errors_name_file_and_tensor);
	suite_add_tcase(s, tc);
	/* the real head in ../shared/fixtures: meson test tensor-fixture */
	TCase *tf = tcase_create("fixture");
	tcase_set_tags(tf, "fixture");
	tcase_add_test(tf, aesthetic_fixture_names_and_shapes);
	suite_add_tcase(s, tf);

	/* files PyTorch writes: meson test tensor-torch */
	TCase *tt = tcase_create("torch");
	tcase_set_tags(tt, "torch");
	tcase_set_timeout(tt, 120);
	tcase_add_unchecked_fixture(tt, torch_setup, torch_teardown);
	tcase_add_test(tt, half_conversion_matches_torch_exhaustively);
	tcase_add_test(tt, python_written_file_matches_torch_values);
	suite_add_tcase(s, tt);
	return s;
}

RWD_CHECK_MAIN(tensor_suite)
