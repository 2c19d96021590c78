/* The WORM ledger: RFC 6962 / 9162 hashing and proofs against the
 * published test vectors and a naive reference, signed tree heads, the
 * file ledger's round trip and failure handling, and verification that
 * names the first bad entry of a ledger file tampered with in every way
 * we could think of. */
#include "config.h"

#define G_LOG_DOMAIN "test-ledger"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-file-ledger.h"
#include "ppn-json.h"
#include "ppn-ledger.h"
#include "ppn-merkle.h"
#include "ppn-test-util.h"

#define HASH PPN_MERKLE_HASH_SIZE

/* ---- helpers ------------------------------------------------------------ */

static GBytes *
unhex (const gchar *hex)
{
	gsize len = strlen (hex) / 2;
	guint8 *out = g_malloc (len + 1);

	for (gsize i = 0; i < len; i++)
		out[i] = (guint8)(g_ascii_xdigit_value (hex[2 * i]) << 4 |
				  g_ascii_xdigit_value (hex[2 * i + 1]));
	return g_bytes_new_take (out, len);
}

static gchar *
tohex (const guint8 *data, gsize len)
{
	GString *s = g_string_new (NULL);

	for (gsize i = 0; i < len; i++)
		g_string_append_printf (s, "%02x", data[i]);
	return g_string_free (s, FALSE);
}

static void
assert_hash_hex (const guint8 *hash, const gchar *expected, const gchar *what)
{
	g_autofree gchar *got = tohex (hash, HASH);

	if (g_strcmp0 (got, expected) != 0)
		g_test_fail_printf ("%s: expected %s, got %s", what, expected, got);
}

static GPtrArray *
proof_from_hex (const gchar *const *hexes)
{
	GPtrArray *proof = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; hexes[i] != NULL; i++)
		g_ptr_array_add (proof, unhex (hexes[i]));
	return proof;
}

static gboolean
proof_equal (GPtrArray *a, GPtrArray *b)
{
	if (a->len != b->len)
		return FALSE;
	for (guint i = 0; i < a->len; i++) {
		if (!g_bytes_equal (g_ptr_array_index (a, i), g_ptr_array_index (b, i)))
			return FALSE;
	}
	return TRUE;
}

static GPtrArray *
proof_copy (GPtrArray *proof)
{
	GPtrArray *copy = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; i < proof->len; i++) {
		gsize len = 0;
		const guint8 *h = g_bytes_get_data (g_ptr_array_index (proof, i), &len);
		g_ptr_array_add (copy, g_bytes_new (h, len));
	}
	return copy;
}

/* a copy of @proof with bit @bit of element @element flipped */
static GPtrArray *
proof_flip (GPtrArray *proof, guint element, guint bit)
{
	GPtrArray *copy = proof_copy (proof);
	GBytes *old = g_ptr_array_index (copy, element);
	gsize len = 0;
	const guint8 *data = g_bytes_get_data (old, &len);
	guint8 *h = g_memdup2 (data, len);

	h[bit / 8] ^= (guint8)(1u << (bit % 8));
	copy->pdata[element] = g_bytes_new_take (h, len);
	g_bytes_unref (old);
	return copy;
}

static PpnMerkleTree *
tree_of (GPtrArray *leaves, guint n)
{
	PpnMerkleTree *tree = ppn_merkle_tree_new ();

	for (guint i = 0; i < n; i++)
		ppn_merkle_tree_append (tree, g_bytes_get_data (g_ptr_array_index (leaves, i), NULL));
	return tree;
}

/* leaf hashes of entries "leaf 0", "leaf 1", ... */
static GPtrArray *
numbered_leaves (guint n)
{
	GPtrArray *leaves = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; i < n; i++) {
		g_autofree gchar *data = g_strdup_printf ("leaf %u", i);
		guint8 h[HASH];

		ppn_merkle_leaf_hash ((const guint8 *)data, strlen (data), h);
		g_ptr_array_add (leaves, g_bytes_new (h, HASH));
	}
	return leaves;
}

/* ---- the naive reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1 word for word */

static guint
naive_split (guint n)
{
	guint k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

static void
naive_mth (GPtrArray *leaves, guint lo, guint n, guint8 out[HASH])
{
	guint8 l[HASH], r[HASH];
	guint k;

	if (n == 0) {
		gnutls_hash_fast (GNUTLS_DIG_SHA256, "", 0, out);
		return;
	}
	if (n == 1) {
		memcpy (out, g_bytes_get_data (g_ptr_array_index (leaves, lo), NULL), HASH);
		return;
	}
	k = naive_split (n);
	naive_mth (leaves, lo, k, l);
	naive_mth (leaves, lo + k, n - k, r);
	ppn_merkle_node_hash (l, r, out);
}

static void
naive_add (GPtrArray *proof, GPtrArray *leaves, guint lo, guint n)
{
	guint8 h[HASH];

	naive_mth (leaves, lo, n, h);
	g_ptr_array_add (proof, g_bytes_new (h, HASH));
}

static void
naive_path (GPtrArray *proof, GPtrArray *leaves, guint m, guint lo, guint n)
{
	guint k;

	if (n <= 1)
		return;
	k = naive_split (n);
	if (m < k) {
		naive_path (proof, leaves, m, lo, k);
		naive_add (proof, leaves, lo + k, n - k);
	} else {
		naive_path (proof, leaves, m - k, lo + k, n - k);
		naive_add (proof, leaves, lo, k);
	}
}

static void
naive_subproof (GPtrArray *proof, GPtrArray *leaves, guint m, guint lo, guint n, gboolean b)
{
	guint k;

	if (m == n) {
		if (!b)
			naive_add (proof, leaves, lo, n);
		return;
	}
	k = naive_split (n);
	if (m <= k) {
		naive_subproof (proof, leaves, m, lo, k, b);
		naive_add (proof, leaves, lo + k, n - k);
	} else {
		naive_subproof (proof, leaves, m - k, lo + k, n - k, FALSE);
		naive_add (proof, leaves, lo, k);
	}
}

/* ---- known answers ------------------------------------------------------ */

/* the tree of certificate-transparency's merkle_tree_test and RFC 9162's
 * test data (transparency-dev/merkle proof/verify_test.go) */
static const gchar *const kat_leaves[] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
};
static const gchar *const kat_roots[] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static const struct {
	guint index, size;
	const gchar *proof[4];
} kat_inclusion[] = {
	{0, 1, {NULL}},
	{0, 8,
	 {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4", NULL}},
	{5, 8,
	 {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7", NULL}},
	{2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125", NULL}},
	{1, 5,
	 {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", NULL}},
};

static const struct {
	guint first, second;
	const gchar *proof[4];
} kat_consistency[] = {
	{1, 1, {NULL}},
	{1, 8,
	 {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4", NULL}},
	{6, 8,
	 {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7", NULL}},
	{2, 5,
	 {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", NULL}},
	{6, 7,
	 {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7", NULL}},
};

static GPtrArray *
kat_leaf_hashes (void)
{
	GPtrArray *leaves = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; i < G_N_ELEMENTS (kat_leaves); i++) {
		g_autoptr(GBytes) data = unhex (kat_leaves[i]);
		gsize len = 0;
		const guint8 *d = g_bytes_get_data (data, &len);
		guint8 h[HASH];

		ppn_merkle_leaf_hash (d, len, h);
		g_ptr_array_add (leaves, g_bytes_new (h, HASH));
	}
	return leaves;
}

static void
test_merkle_known_answers (void)
{
	g_autoptr(GPtrArray) leaves = kat_leaf_hashes ();
	g_autoptr(PpnMerkleTree) tree = tree_of (leaves, leaves->len);
	g_autoptr(GError) error = NULL;
	guint8 root[HASH], l[HASH], r[HASH];

	/* the leaf hash of "" is the root of the one-leaf tree */
	assert_hash_hex (g_bytes_get_data (g_ptr_array_index (leaves, 0), NULL), kat_roots[1],
			 "leaf hash of \"\"");
	ppn_merkle_node_hash (g_bytes_get_data (g_ptr_array_index (leaves, 0), NULL),
			      g_bytes_get_data (g_ptr_array_index (leaves, 1), NULL), l);
	assert_hash_hex (l, kat_roots[2], "node hash of leaves 0 and 1");
	memset (r, 0, sizeof r);
	g_assert_cmpuint (ppn_merkle_tree_size (tree), ==, 8);
	for (guint n = 0; n <= 8; n++) {
		g_autofree gchar *what = g_strdup_printf ("root of size %u", n);
		g_assert_true (ppn_merkle_tree_root (tree, n, root, &error));
		g_assert_no_error (error);
		assert_hash_hex (root, kat_roots[n], what);
	}
	g_assert_false (ppn_merkle_tree_root (tree, 9, root, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);

	for (guint i = 0; i < G_N_ELEMENTS (kat_inclusion); i++) {
		g_autoptr(GPtrArray) expected = proof_from_hex (kat_inclusion[i].proof);
		g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_inclusion (tree, kat_inclusion[i].index,
									       kat_inclusion[i].size, &error);
		g_autoptr(GBytes) root_bytes = unhex (kat_roots[kat_inclusion[i].size]);

		g_assert_no_error (error);
		if (!proof_equal (proof, expected))
			g_test_fail_printf ("inclusion proof of %u in %u differs from the RFC's",
					    kat_inclusion[i].index, kat_inclusion[i].size);
		g_assert_true (ppn_merkle_verify_inclusion (
			g_bytes_get_data (g_ptr_array_index (leaves, kat_inclusion[i].index), NULL),
			kat_inclusion[i].index, kat_inclusion[i].size, expected,
			g_bytes_get_data (root_bytes, NULL), &error));
		g_assert_no_error (error);
	}
	for (guint i = 0; i < G_N_ELEMENTS (kat_consistency); i++) {
		g_autoptr(GPtrArray) expected = proof_from_hex (kat_consistency[i].proof);
		g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_consistency (
			tree, kat_consistency[i].first, kat_consistency[i].second, &error);
		g_autoptr(GBytes) r1 = unhex (kat_roots[kat_consistency[i].first]);
		g_autoptr(GBytes) r2 = unhex (kat_roots[kat_consistency[i].second]);

		g_assert_no_error (error);
		if (!proof_equal (proof, expected))
			g_test_fail_printf ("consistency proof %u -> %u differs from the RFC's",
					    kat_consistency[i].first, kat_consistency[i].second);
		g_assert_true (ppn_merkle_verify_consistency (
			kat_consistency[i].first, kat_consistency[i].second, g_bytes_get_data (r1, NULL),
			g_bytes_get_data (r2, NULL), expected, &error));
		g_assert_no_error (error);
	}
}

/* the edge cases of transparency-dev's TestVerifyConsistency */
static void
test_merkle_consistency_edges (void)
{
	g_autoptr(GBytes) empty = unhex (kat_roots[0]);
	const guint8 *e = g_bytes_get_data (empty, NULL);
	guint8 a[HASH], b[HASH];
	g_autoptr(GPtrArray) none = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	g_autoptr(GPtrArray) one = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	static const struct {
		guint64 first, second;
		gboolean same_roots, with_hash, ok;
	} cases[] = {
		{0, 0, TRUE, FALSE, TRUE},  {0, 1, FALSE, FALSE, TRUE}, {1, 1, TRUE, FALSE, TRUE},
		{1, 1, FALSE, FALSE, FALSE}, {1, 0, FALSE, FALSE, FALSE}, {2, 1, FALSE, FALSE, FALSE},
		{1, 2, FALSE, FALSE, FALSE}, {0, 0, TRUE, TRUE, FALSE},  {0, 1, TRUE, TRUE, FALSE},
		{1, 1, TRUE, TRUE, FALSE},
	};

	memset (a, 0xaa, sizeof a);
	memset (b, 0xbb, sizeof b);
	g_ptr_array_add (one, g_bytes_new (e, HASH));
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(GError) error = NULL;
		gboolean ok = ppn_merkle_verify_consistency (cases[i].first, cases[i].second, a,
							     cases[i].same_roots ? a : b,
							     cases[i].with_hash ? one : none, &error);

		if (ok != cases[i].ok)
			g_test_fail_printf ("consistency %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT
					    " (case %u): expected %s, got %s",
					    cases[i].first, cases[i].second, i,
					    cases[i].ok ? "ok" : "refusal", ok ? "ok" : error->message);
	}
}

static gboolean
inclusion_ok (const guint8 *leaf, guint64 index, guint64 size, GPtrArray *proof, const guint8 *root)
{
	return ppn_merkle_verify_inclusion (leaf, index, size, proof, root, NULL);
}

static gboolean
consistency_ok (guint64 m, guint64 n, const guint8 *r1, const guint8 *r2, GPtrArray *proof)
{
	return ppn_merkle_verify_consistency (m, n, r1, r2, proof, NULL);
}

/* every proof of every tree up to 64 leaves is the RFC's and verifies;
 * a proof with any one bit flipped, a wrong root, leaf or index does
 * not, nor a consistency proof for other sizes */
static void
test_merkle_brute_force (void)
{
	const guint max = 64;
	g_autoptr(GPtrArray) leaves = numbered_leaves (max);
	g_autoptr(PpnMerkleTree) tree = tree_of (leaves, max);
	guint8 roots[65][HASH];
	guint checked = 0;

	for (guint n = 0; n <= max; n++) {
		g_assert_true (ppn_merkle_tree_root (tree, n, roots[n], NULL));
		{
			guint8 naive[HASH];
			naive_mth (leaves, 0, n, naive);
			g_assert_cmpmem (roots[n], HASH, naive, HASH);
		}
	}
	for (guint n = 1; n <= max; n++) {
		for (guint i = 0; i < n; i++) {
			const guint8 *leaf = g_bytes_get_data (g_ptr_array_index (leaves, i), NULL);
			g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_inclusion (tree, i, n, NULL);
			g_autoptr(GPtrArray) naive =
				g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
			guint8 bad[HASH];

			naive_path (naive, leaves, i, 0, n);
			g_assert_true (proof_equal (proof, naive));
			g_assert_true (inclusion_ok (leaf, i, n, proof, roots[n]));
			for (guint e = 0; e < proof->len; e++) {
				for (guint bit = 0; bit < HASH * 8; bit += 1 + (e + i + n) % 23) {
					g_autoptr(GPtrArray) flipped = proof_flip (proof, e, bit);
					g_assert_false (inclusion_ok (leaf, i, n, flipped, roots[n]));
				}
			}
			for (guint bit = 0; bit < HASH * 8; bit += 37) {
				memcpy (bad, roots[n], HASH);
				bad[bit / 8] ^= (guint8)(1u << (bit % 8));
				g_assert_false (inclusion_ok (leaf, i, n, proof, bad));
				memcpy (bad, leaf, HASH);
				bad[bit / 8] ^= (guint8)(1u << (bit % 8));
				g_assert_false (inclusion_ok (bad, i, n, proof, roots[n]));
			}
			for (guint bit = 0; bit < 64; bit++) {
				guint64 other = (guint64)i ^ (G_GUINT64_CONSTANT (1) << bit);
				g_assert_false (inclusion_ok (leaf, other, n, proof, roots[n]));
			}
			/* (a wrong tree size with the same root can pass where the
			 * path has the same shape: the signed head binds the two) */
			if (proof->len > 0) {
				g_autoptr(GPtrArray) shorter = proof_copy (proof);
				g_autoptr(GPtrArray) longer = proof_copy (proof);
				g_ptr_array_remove_index (shorter, shorter->len - 1);
				g_ptr_array_add (longer, g_bytes_new (roots[n], HASH));
				g_assert_false (inclusion_ok (leaf, i, n, shorter, roots[n]));
				g_assert_false (inclusion_ok (leaf, i, n, longer, roots[n]));
			}
			checked++;
		}
	}
	for (guint n = 1; n <= max; n++) {
		for (guint m = 1; m < n; m++) {
			g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_consistency (tree, m, n, NULL);
			g_autoptr(GPtrArray) naive =
				g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
			guint8 bad[HASH];

			naive_subproof (naive, leaves, m, 0, n, TRUE);
			g_assert_true (proof_equal (proof, naive));
			g_assert_true (consistency_ok (m, n, roots[m], roots[n], proof));
			for (guint e = 0; e < proof->len; e++) {
				for (guint bit = 0; bit < HASH * 8; bit += 1 + (e + m + n) % 23) {
					g_autoptr(GPtrArray) flipped = proof_flip (proof, e, bit);
					g_assert_false (consistency_ok (m, n, roots[m], roots[n], flipped));
				}
			}
			for (guint bit = 0; bit < HASH * 8; bit += 37) {
				memcpy (bad, roots[m], HASH);
				bad[bit / 8] ^= (guint8)(1u << (bit % 8));
				g_assert_false (consistency_ok (m, n, bad, roots[n], proof));
				memcpy (bad, roots[n], HASH);
				bad[bit / 8] ^= (guint8)(1u << (bit % 8));
				g_assert_false (consistency_ok (m, n, roots[m], bad, proof));
			}
			/* against the roots of other sizes */
			if (m > 1)
				g_assert_false (consistency_ok (m - 1, n, roots[m - 1], roots[n], proof));
			if (m + 1 < n)
				g_assert_false (consistency_ok (m + 1, n, roots[m + 1], roots[n], proof));
			if (n < max)
				g_assert_false (consistency_ok (m, n + 1, roots[m], roots[n + 1], proof));
			g_assert_false (consistency_ok (m, n, roots[n], roots[m], proof));
			{
				g_autoptr(GPtrArray) shorter = proof_copy (proof);
				g_ptr_array_remove_index (shorter, shorter->len - 1);
				g_assert_false (consistency_ok (m, n, roots[m], roots[n], shorter));
			}
			checked++;
		}
	}
	g_test_message ("%u proofs checked", checked);
}

static void
test_merkle_truncate (void)
{
	g_autoptr(GPtrArray) leaves = numbered_leaves (100);
	g_autoptr(PpnMerkleTree) tree = tree_of (leaves, 100);

	for (guint size = 100; size-- > 0;) {
		g_autoptr(PpnMerkleTree) fresh = tree_of (leaves, size);
		guint8 a[HASH], b[HASH];

		ppn_merkle_tree_truncate (tree, size);
		g_assert_cmpuint (ppn_merkle_tree_size (tree), ==, size);
		g_assert_true (ppn_merkle_tree_root (tree, size, a, NULL));
		g_assert_true (ppn_merkle_tree_root (fresh, size, b, NULL));
		g_assert_cmpmem (a, HASH, b, HASH);
		/* and it grows again the same */
		if (size % 10 == 3) {
			ppn_merkle_tree_append (tree,
						g_bytes_get_data (g_ptr_array_index (leaves, size), NULL));
			ppn_merkle_tree_append (fresh,
						g_bytes_get_data (g_ptr_array_index (leaves, size), NULL));
			g_assert_true (ppn_merkle_tree_root (tree, size + 1, a, NULL));
			g_assert_true (ppn_merkle_tree_root (fresh, size + 1, b, NULL));
			g_assert_cmpmem (a, HASH, b, HASH);
			ppn_merkle_tree_truncate (tree, size);
		}
	}
}

/* 2^17 leaves: roots agree with the naive recursion, proofs verify, and
 * a page of 100 proofs costs O(log^2 n) hashes each, not O(n) */
static void
test_merkle_large_tree (void)
{
	const guint n = 1 << 17;
	g_autoptr(GPtrArray) leaves = numbered_leaves (n);
	g_autoptr(PpnMerkleTree) tree = tree_of (leaves, n);
	GRand *rand = g_rand_new_with_seed (6962);
	gint64 t0;
	gdouble ms;

	for (guint s = 0; s < 4; s++) {
		guint size = (guint)g_rand_int_range (rand, 1, (gint32)n + 1);
		guint8 a[HASH], b[HASH];

		g_assert_true (ppn_merkle_tree_root (tree, size, a, NULL));
		naive_mth (leaves, 0, size, b);
		g_assert_cmpmem (a, HASH, b, HASH);
	}
	t0 = g_get_monotonic_time ();
	for (guint p = 0; p < 100; p++) {
		guint size = n - (guint)g_rand_int_range (rand, 0, 1000);
		guint index = (guint)g_rand_int_range (rand, 0, (gint32)size);
		g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_inclusion (tree, index, size, NULL);

		g_assert_nonnull (proof);
	}
	ms = (g_get_monotonic_time () - t0) / 1000.0;
	g_test_message ("100 inclusion proofs at %u leaves: %.2f ms", n, ms);
	/* O(n) a proof would be some 13M hashes; a sanitizer build is slow */
	g_assert_cmpfloat (ms, <, 1000.0);
	for (guint p = 0; p < 50; p++) {
		guint size = (guint)g_rand_int_range (rand, 2, (gint32)n + 1);
		guint index = (guint)g_rand_int_range (rand, 0, (gint32)size);
		guint first = (guint)g_rand_int_range (rand, 1, (gint32)size);
		g_autoptr(GPtrArray) inclusion = ppn_merkle_tree_prove_inclusion (tree, index, size, NULL);
		g_autoptr(GPtrArray) consistency =
			ppn_merkle_tree_prove_consistency (tree, first, size, NULL);
		guint8 root[HASH], first_root[HASH];

		g_assert_true (ppn_merkle_tree_root (tree, size, root, NULL));
		g_assert_true (ppn_merkle_tree_root (tree, first, first_root, NULL));
		g_assert_true (inclusion_ok (g_bytes_get_data (g_ptr_array_index (leaves, index), NULL),
					     index, size, inclusion, root));
		g_assert_true (consistency_ok (first, size, first_root, root, consistency));
	}
	g_rand_free (rand);
}

static void
test_merkle_proof_json (void)
{
	g_autoptr(GPtrArray) leaves = kat_leaf_hashes ();
	g_autoptr(PpnMerkleTree) tree = tree_of (leaves, leaves->len);
	g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_inclusion (tree, 5, 8, NULL);
	g_autoptr(JsonNode) node = ppn_merkle_proof_to_json (proof);
	g_autoptr(GPtrArray) back = NULL;
	g_autoptr(GError) error = NULL;
	static const gchar *const bad[] = {
		"{}", "[1]", "[null]", "[\"\"]", "[\"AAAA\"]",
		/* 31 and 33 bytes, padding bits set, not base64 */
		"[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"]",
		"[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"]",
		"[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\"]",
		"[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!=\"]",
		"[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]",
	};

	back = ppn_merkle_proof_from_json (node, &error);
	g_assert_no_error (error);
	g_assert_true (proof_equal (proof, back));
	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(JsonNode) n = json_from_string (bad[i], NULL);
		g_autoptr(GPtrArray) p = NULL;

		g_assert_nonnull (n);
		p = ppn_merkle_proof_from_json (n, &error);
		if (p != NULL)
			g_test_fail_printf ("proof %s: accepted", bad[i]);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_clear_error (&error);
	}
}

/* ---- tree heads --------------------------------------------------------- */

static void
make_key (GBytes **private_pem, GBytes **public_pem)
{
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_ledger_generate_key (private_pem, public_pem, &error));
	g_assert_no_error (error);
}

static PpnTreeHead *
signed_head (guint64 size, const guint8 *root, gint64 timestamp, GBytes *private_pem)
{
	g_autoptr(PpnTreeHead) head = ppn_tree_head_new (size, root, timestamp, NULL);
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_tree_head_sign (head, private_pem, &error));
	g_assert_no_error (error);
	return g_steal_pointer (&head);
}

static void
head_flip_signature (PpnTreeHead *head, guint bit)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data (head->signature, &len);
	guint8 *sig = g_memdup2 (data, len);

	sig[bit / 8] ^= (guint8)(1u << (bit % 8));
	g_bytes_unref (head->signature);
	head->signature = g_bytes_new_take (sig, len);
}

static void
test_tree_head_signed_data (void)
{
	guint8 root[HASH];
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GBytes) data = NULL;
	g_autoptr(GBytes) expected = NULL;
	GString *hex = g_string_new (NULL);

	for (guint i = 0; i < HASH; i++)
		root[i] = (guint8)i;
	head = ppn_tree_head_new (G_GUINT64_CONSTANT (0x0102030405060708), root,
				  G_GINT64_CONSTANT (0x1122334455667788), NULL);
	data = ppn_tree_head_signed_data (head);
	for (const gchar *p = "ppn-ledger-tree-head-v1"; *p != '\0'; p++)
		g_string_append_printf (hex, "%02x", (guchar)*p);
	g_string_append (hex, "00" "0102030405060708" "1122334455667788");
	for (guint i = 0; i < HASH; i++)
		g_string_append_printf (hex, "%02x", i);
	expected = unhex (hex->str);
	g_string_free (hex, TRUE);
	g_assert_cmpuint (g_bytes_get_size (data), ==, PPN_TREE_HEAD_SIGNED_DATA_SIZE);
	g_assert_cmpmem (g_bytes_get_data (data, NULL), g_bytes_get_size (data),
			 g_bytes_get_data (expected, NULL), g_bytes_get_size (expected));
}

static void
test_tree_head_json (void)
{
	g_autoptr(GBytes) key = NULL;
	g_autoptr(GBytes) pub = NULL;
	guint8 root[HASH];
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(JsonNode) node = NULL;
	g_autoptr(PpnTreeHead) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *json = NULL;
	static const struct {
		const gchar *json;
		const gchar *says; /* in the message */
	} bad[] = {
		{"[]", "object"},
		{"{\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"S\"}", "tree_size"},
		{"{\"tree_size\":1,\"timestamp\":1,\"signature\":\"S\"}", "root_hash"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"signature\":\"S\"}", "timestamp"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"timestamp\":1}", "signature"},
		{"{\"tree_size\":\"1\",\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"S\"}",
		 "tree_size"},
		{"{\"tree_size\":-1,\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"S\"}", "tree_size"},
		{"{\"tree_size\":1.5,\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"S\"}", "tree_size"},
		{"{\"tree_size\":1,\"root_hash\":7,\"timestamp\":1,\"signature\":\"S\"}", "root_hash"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"timestamp\":true,\"signature\":\"S\"}", "timestamp"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"timestamp\":1,\"signature\":null}", "signature"},
		{"{\"tree_size\":1,\"root_hash\":\"AAAA\",\"timestamp\":1,\"signature\":\"S\"}", "root_hash"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"S\",\"x\":1}", "'x'"},
		{"{\"tree_size\":1,\"root_hash\":\"R\",\"timestamp\":1,\"signature\":\"AAAA\"}", "signature"},
	};

	make_key (&key, &pub);
	memset (root, 0x5d, sizeof root);
	head = signed_head (42, root, 1764780000123, key);
	node = ppn_tree_head_to_json (head);
	json = ppn_json_to_data (node, NULL);
	g_test_message ("%s", json);
	back = ppn_tree_head_from_json (node, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (back->tree_size, ==, 42);
	g_assert_cmpint (back->timestamp, ==, 1764780000123);
	g_assert_cmpmem (back->root_hash, HASH, root, HASH);
	g_assert_true (g_bytes_equal (back->signature, head->signature));
	g_assert_true (ppn_tree_head_verify (back, pub, &error));
	g_assert_no_error (error);

	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(JsonObject) good = json_object_ref (json_node_get_object (node));
		g_autofree gchar *text = g_strdup (bad[i].json);
		g_autoptr(JsonNode) n = NULL;
		g_autoptr(PpnTreeHead) h = NULL;

		/* R and S stand for the good head's values, so that only one
		 * thing is wrong in each case */
		{
			g_autoptr(GString) s = g_string_new (text);
			g_autofree gchar *r =
				g_strdup_printf ("\"%s\"", json_object_get_string_member (good, "root_hash"));
			g_autofree gchar *sig =
				g_strdup_printf ("\"%s\"", json_object_get_string_member (good, "signature"));
			g_string_replace (s, "\"R\"", r, 0);
			g_string_replace (s, "\"S\"", sig, 0);
			g_free (text);
			text = g_string_free (g_steal_pointer (&s), FALSE);
		}
		n = json_from_string (text, NULL);
		g_assert_nonnull (n);
		h = ppn_tree_head_from_json (n, &error);
		if (h != NULL) {
			g_test_fail_printf ("tree head %s: accepted", text);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		if (strstr (error->message, bad[i].says) == NULL)
			g_test_fail_printf ("tree head %s: the message '%s' does not name %s", text,
					    error->message, bad[i].says);
		g_clear_error (&error);
	}
}

static void
test_tree_head_sign_verify (void)
{
	g_autoptr(GBytes) key = NULL;
	g_autoptr(GBytes) pub = NULL;
	g_autoptr(GBytes) other_key = NULL;
	g_autoptr(GBytes) other_pub = NULL;
	g_autoptr(GError) error = NULL;
	guint8 root[HASH];
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GBytes) junk = g_bytes_new_static ("not a key", 9);

	make_key (&key, &pub);
	make_key (&other_key, &other_pub);
	/* PEM in GBytes: not NUL-terminated */
	g_assert_nonnull (g_strstr_len (g_bytes_get_data (key, NULL), (gssize)g_bytes_get_size (key),
					"-----BEGIN PRIVATE KEY-----"));
	g_assert_nonnull (g_strstr_len (g_bytes_get_data (pub, NULL), (gssize)g_bytes_get_size (pub),
					"-----BEGIN PUBLIC KEY-----"));
	memset (root, 0x42, sizeof root);
	head = signed_head (7, root, 1000, key);
	g_assert_cmpuint (g_bytes_get_size (head->signature), ==, PPN_TREE_HEAD_SIGNATURE_SIZE);
	g_assert_true (ppn_tree_head_verify (head, pub, &error));
	g_assert_no_error (error);

	g_assert_false (ppn_tree_head_verify (head, other_pub, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "does not verify"));
	g_clear_error (&error);
	g_assert_false (ppn_tree_head_verify (head, junk, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	/* every field is covered */
	for (guint field = 0; field < 4; field++) {
		g_autoptr(PpnTreeHead) h = ppn_tree_head_copy (head);

		if (field == 0)
			h->tree_size++;
		else if (field == 1)
			h->timestamp++;
		else if (field == 2)
			h->root_hash[31] ^= 1;
		else
			head_flip_signature (h, 100);
		g_assert_false (ppn_tree_head_verify (h, pub, &error));
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_clear_error (&error);
	}
	{
		g_autoptr(PpnTreeHead) unsigned_head = ppn_tree_head_new (7, root, 1000, NULL);
		g_assert_false (ppn_tree_head_verify (unsigned_head, pub, &error));
		g_assert_nonnull (strstr (error->message, "not signed"));
		g_clear_error (&error);
	}
}

/* a proof against a head that the ledger key did not sign proves
 * nothing, however right its Merkle path */
static void
test_inclusion_needs_signed_head (void)
{
	g_autoptr(GBytes) key = NULL;
	g_autoptr(GBytes) pub = NULL;
	g_autoptr(GBytes) other_key = NULL;
	g_autoptr(GBytes) other_pub = NULL;
	g_autoptr(PpnMerkleTree) tree = ppn_merkle_tree_new ();
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	g_autoptr(GPtrArray) proof = NULL;
	g_autoptr(GError) error = NULL;
	guint8 root[HASH], leaf[HASH];

	make_key (&key, &pub);
	make_key (&other_key, &other_pub);
	for (guint i = 0; i < 11; i++) {
		g_autofree gchar *text = g_strdup_printf ("{\"op\":\"create\",\"n\":%u}", i);
		g_ptr_array_add (entries, g_bytes_new (text, strlen (text)));
		ppn_merkle_leaf_hash ((const guint8 *)text, strlen (text), leaf);
		ppn_merkle_tree_append (tree, leaf);
	}
	g_assert_true (ppn_merkle_tree_root (tree, 11, root, NULL));
	proof = ppn_merkle_tree_prove_inclusion (tree, 6, 11, NULL);
	{
		g_autoptr(PpnTreeHead) head = signed_head (11, root, 5000, key);
		g_assert_true (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 6), 6,
							    proof, &error));
		g_assert_no_error (error);
		/* the wrong entry, the wrong index */
		g_assert_false (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 5), 6,
							     proof, NULL));
		g_assert_false (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 6), 5,
							     proof, NULL));
	}
	{
		/* the same root, signed by another key */
		g_autoptr(PpnTreeHead) head = signed_head (11, root, 5000, other_key);
		ppn_merkle_leaf_hash (g_bytes_get_data (g_ptr_array_index (entries, 6), NULL),
				      g_bytes_get_size (g_ptr_array_index (entries, 6)), leaf);
		g_assert_true (ppn_merkle_verify_inclusion (leaf, 6, 11, proof, head->root_hash, NULL));
		g_assert_false (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 6), 6,
							     proof, &error));
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_assert_nonnull (strstr (error->message, "signature"));
		g_clear_error (&error);
	}
	for (guint bit = 0; bit < PPN_TREE_HEAD_SIGNATURE_SIZE * 8; bit += 61) {
		g_autoptr(PpnTreeHead) head = signed_head (11, root, 5000, key);
		head_flip_signature (head, bit);
		g_assert_false (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 6), 6,
							     proof, &error));
		g_assert_nonnull (strstr (error->message, "signature"));
		g_clear_error (&error);
	}
	{
		g_autoptr(PpnTreeHead) head = ppn_tree_head_new (11, root, 5000, NULL);
		g_assert_false (ppn_ledger_verify_inclusion (head, pub, g_ptr_array_index (entries, 6), 6,
							     proof, NULL));
	}
}

/* ---- the file ledger ---------------------------------------------------- */

static void
unprotect (const gchar *path)
{
	int fd = open (path, O_RDONLY | O_CLOEXEC);
	int flags = 0;

	if (fd < 0)
		return;
	if (ioctl (fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_APPEND_FL) != 0) {
		flags &= ~FS_APPEND_FL;
		g_assert_cmpint (ioctl (fd, FS_IOC_SETFLAGS, &flags), ==, 0);
	}
	close (fd);
}

static GBytes *
entry_bytes (guint64 i)
{
	g_autofree gchar *text = g_strdup_printf (
		"{\"ts\":\"2026-12-03T18:07:06Z\",\"tenant\":\"alice\",\"op\":\"create\",\"vm\":\"%"
		"016" G_GINT64_MODIFIER "x\",\"outcome\":\"ok\",\"request\":\"req-%" G_GUINT64_FORMAT "\"}",
		i * 2654435761u, i);

	return g_bytes_new (text, strlen (text));
}

static gboolean
append_range (PpnLedger *ledger, guint64 first, guint count, GError **error)
{
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	guint64 index = G_MAXUINT64;

	for (guint i = 0; i < count; i++)
		g_ptr_array_add (entries, entry_bytes (first + i));
	if (!ppn_ledger_append (ledger, entries, &index, error))
		return FALSE;
	g_assert_cmpuint (index, ==, first);
	return TRUE;
}

static GBytes *
read_bytes (const gchar *path)
{
	gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;

	g_assert_true (g_file_get_contents (path, &data, &len, &error));
	g_assert_no_error (error);
	return g_bytes_new_take (data, len);
}

static gchar *
make_dir (void)
{
	g_autoptr(GError) error = NULL;
	gchar *dir = g_dir_make_tmp ("test-ledger-XXXXXX", &error);

	g_assert_no_error (error);
	return dir;
}

/* five appends: entries 0-3 | 4 | 5-7 | 8-12 | 13-14, a head after each */
static const guint fixture_batches[] = {4, 1, 3, 5, 2};
#define FIXTURE_ENTRIES 15

typedef struct {
	gchar *dir;
	gchar *path;
	GBytes *pub;
	GBytes *key;
	GPtrArray *heads; /* the head after each batch */
} Fixture;

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = NULL;
	guint64 next = 0;
	g_autofree gchar *key_path = NULL;

	fx->dir = make_dir ();
	fx->path = g_build_filename (fx->dir, "ledger", NULL);
	fx->heads = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_tree_head_free);
	ledger = ppn_file_ledger_open (fx->dir, &error);
	g_assert_no_error (error);
	for (guint b = 0; b < G_N_ELEMENTS (fixture_batches); b++) {
		g_assert_true (append_range (PPN_LEDGER (ledger), next, fixture_batches[b], &error));
		g_assert_no_error (error);
		next += fixture_batches[b];
		g_ptr_array_add (fx->heads, ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error));
		g_assert_no_error (error);
	}
	g_assert_cmpuint (next, ==, FIXTURE_ENTRIES);
	fx->pub = ppn_ledger_get_public_key (PPN_LEDGER (ledger));
	key_path = g_build_filename (fx->dir, "ledger.key", NULL);
	fx->key = read_bytes (key_path);
	/* the tamper tests edit the file, which is the point of chattr +a */
	unprotect (fx->path);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
	ppn_test_rm_rf (fx->dir);
	g_free (fx->dir);
	g_free (fx->path);
	g_bytes_unref (fx->pub);
	g_bytes_unref (fx->key);
	g_ptr_array_unref (fx->heads);
}

static PpnTreeHead *
fixture_head (Fixture *fx, guint batch)
{
	return g_ptr_array_index (fx->heads, batch);
}

/* the file, as the tests see it: a record is its type, where it starts
 * and how long it is, checksum included */
typedef struct {
	gsize offset;
	guint8 type;
	gsize len;
} Record;

#define HEADER_SIZE 48

static GByteArray *
file_load (const gchar *path)
{
	g_autoptr(GBytes) bytes = read_bytes (path);

	return g_bytes_unref_to_array (g_steal_pointer (&bytes));
}

static void
file_save (const gchar *path, GByteArray *data)
{
	g_autoptr(GError) error = NULL;

	unprotect (path);
	g_assert_true (g_file_set_contents (path, (const gchar *)data->data, data->len, &error));
	g_assert_no_error (error);
}

static GArray *
file_records (GByteArray *data)
{
	GArray *records = g_array_new (FALSE, FALSE, sizeof (Record));
	gsize off = HEADER_SIZE;

	while (off + 5 <= data->len) {
		guint32 plen_be;
		Record r;

		memcpy (&plen_be, data->data + off + 1, 4);
		r.offset = off;
		r.type = data->data[off];
		r.len = 5 + GUINT32_FROM_BE (plen_be) + HASH;
		g_array_append_val (records, r);
		off += r.len;
	}
	return records;
}

/* the @n-th record of @type ('E' or 'H') */
static Record
file_record (GArray *records, guint8 type, guint n)
{
	for (guint i = 0; i < records->len; i++) {
		Record r = g_array_index (records, Record, i);
		if (r.type == type && n-- == 0)
			return r;
	}
	g_error ("the ledger has no such record");
}

/* what an adversary does after an edit: every checksum from @offset on
 * made to match again */
static void
file_rechain (GByteArray *data, gsize offset)
{
	g_autoptr(GArray) records = file_records (data);

	for (guint i = 0; i < records->len; i++) {
		Record r = g_array_index (records, Record, i);
		if (r.offset < offset || r.offset + r.len > data->len)
			continue;
		gnutls_hash_fast (GNUTLS_DIG_SHA256, data->data + r.offset - HASH, HASH + r.len - HASH,
				  data->data + r.offset + r.len - HASH);
	}
}

static void
file_insert (GByteArray *data, gsize offset, const guint8 *bytes, gsize len)
{
	g_autoptr(GByteArray) out = g_byte_array_new ();

	g_byte_array_append (out, data->data, (guint)offset);
	g_byte_array_append (out, bytes, (guint)len);
	g_byte_array_append (out, data->data + offset, (guint)(data->len - offset));
	g_byte_array_set_size (data, 0);
	g_byte_array_append (data, out->data, out->len);
}

static void
file_remove (GByteArray *data, gsize offset, gsize len)
{
	g_byte_array_remove_range (data, (guint)offset, (guint)len);
}

/* a head record as the ledger writes it, chained after @data's end */
static void
file_append_head (GByteArray *data, const PpnTreeHead *head)
{
	g_autoptr(GBytes) signed_data = ppn_tree_head_signed_data (head);
	guint32 len_be = GUINT32_TO_BE (PPN_TREE_HEAD_SIGNED_DATA_SIZE + PPN_TREE_HEAD_SIGNATURE_SIZE);
	guint8 type = 'H';
	gsize start = data->len;

	g_byte_array_append (data, &type, 1);
	g_byte_array_append (data, (const guint8 *)&len_be, 4);
	g_byte_array_append (data, g_bytes_get_data (signed_data, NULL), PPN_TREE_HEAD_SIGNED_DATA_SIZE);
	g_byte_array_append (data, g_bytes_get_data (head->signature, NULL), PPN_TREE_HEAD_SIGNATURE_SIZE);
	g_byte_array_set_size (data, data->len + HASH);
	file_rechain (data, start);
}

/* the head record of @record replaced by @head, chain mended */
static void
file_replace_head (GByteArray *data, Record record, const PpnTreeHead *head)
{
	g_autoptr(GBytes) signed_data = ppn_tree_head_signed_data (head);

	memcpy (data->data + record.offset + 5, g_bytes_get_data (signed_data, NULL),
		PPN_TREE_HEAD_SIGNED_DATA_SIZE);
	memcpy (data->data + record.offset + 5 + PPN_TREE_HEAD_SIGNED_DATA_SIZE,
		g_bytes_get_data (head->signature, NULL), PPN_TREE_HEAD_SIGNATURE_SIZE);
	file_rechain (data, record.offset);
}

static PpnTreeHead *
file_head (GByteArray *data, Record record)
{
	const guint8 *p = data->data + record.offset + 5 + 24;
	guint64 size, ts;
	g_autoptr(GBytes) sig = g_bytes_new (p + 48, PPN_TREE_HEAD_SIGNATURE_SIZE);

	memcpy (&size, p, 8);
	memcpy (&ts, p + 8, 8);
	return ppn_tree_head_new (GUINT64_FROM_BE (size), p + 16, (gint64)GUINT64_FROM_BE (ts), sig);
}

/* verify fails with @problem at @index, its message saying so, and the
 * ledger is refused */
static void
assert_tampered (Fixture *fx, const PpnTreeHead *published, PpnLedgerProblem problem, guint64 index,
		 const gchar *says)
{
	g_auto(PpnLedgerVerifyResult) result = {0};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = NULL;
	gboolean ok = ppn_file_ledger_verify (fx->path, fx->pub, published, &result, &error);

	if (ok) {
		g_test_fail_printf ("verify passed a tampered ledger (%s expected at %" G_GUINT64_FORMAT ")",
				    ppn_ledger_problem_to_string (problem), index);
		return;
	}
	g_test_message ("verify: %s", error->message);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_cmpstr (result.message, ==, error->message);
	if (result.problem != problem)
		g_test_fail_printf ("expected the problem %s, got %s: %s",
				    ppn_ledger_problem_to_string (problem),
				    ppn_ledger_problem_to_string (result.problem), error->message);
	g_assert_cmpuint (result.bad_index, ==, index);
	if (index != PPN_LEDGER_NO_INDEX) {
		g_autofree gchar *prefix = g_strdup_printf ("entry %" G_GUINT64_FORMAT ": ", index);
		g_assert_true (g_str_has_prefix (error->message, prefix));
		g_assert_cmpuint (result.entries, <=, index);
	}
	if (says != NULL && strstr (error->message, says) == NULL)
		g_test_fail_printf ("the message '%s' does not say '%s'", error->message, says);
	g_clear_error (&error);

	if (published != NULL)
		return; /* open does not know the published head */
	ledger = ppn_file_ledger_open (fx->dir, &error);
	g_assert_null (ledger);
	g_assert_nonnull (error);
	g_test_message ("open: %s", error->message);
	g_assert_nonnull (strstr (error->message, "does not verify"));
	g_assert_nonnull (strstr (error->message, result.message));
}

static void
assert_verifies (Fixture *fx, const PpnTreeHead *published, guint64 entries, guint64 heads)
{
	g_auto(PpnLedgerVerifyResult) result = {0};
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_file_ledger_verify (fx->path, fx->pub, published, &result, &error));
	g_assert_no_error (error);
	g_assert_cmpint (result.problem, ==, PPN_LEDGER_PROBLEM_NONE);
	g_assert_cmpuint (result.entries, ==, entries);
	g_assert_cmpuint (result.tree_heads, ==, heads);
	g_assert_cmpuint (result.bad_index, ==, PPN_LEDGER_NO_INDEX);
	g_assert_null (result.message);
	g_assert_nonnull (result.newest_head);
	g_assert_cmpuint (result.newest_head->tree_size, ==, entries);
}

static void
test_tamper_none (Fixture *fx, gconstpointer data)
{
	assert_verifies (fx, NULL, FIXTURE_ENTRIES, G_N_ELEMENTS (fixture_batches));
	for (guint b = 0; b < fx->heads->len; b++)
		assert_verifies (fx, fixture_head (fx, b), FIXTURE_ENTRIES, G_N_ELEMENTS (fixture_batches));
}

/* the ledger file with one byte of the @n-th record of @type flipped, @at
 * bytes into its payload */
static void
tamper_flip (Fixture *fx, guint8 type, guint n, gsize at, guint8 mask)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record r = file_record (records, type, n);

	file->data[r.offset + 5 + at] ^= mask;
	file_save (fx->path, file);
}

static void
tamper_remove (Fixture *fx, guint8 type, guint n)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record r = file_record (records, type, n);

	file_remove (file, r.offset, r.len);
	file_save (fx->path, file);
}

/* entries 9 and 10 swapped; @forge: their indices rewritten and every
 * checksum mended, as an adversary would */
static void
tamper_swap (Fixture *fx, gboolean forge)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record a = file_record (records, 'E', 9);
	Record b = file_record (records, 'E', 10);
	g_autofree guint8 *copy_a = g_memdup2 (file->data + a.offset, a.len);
	g_autofree guint8 *copy_b = g_memdup2 (file->data + b.offset, b.len);
	guint64 nine = GUINT64_TO_BE (9), ten = GUINT64_TO_BE (10);

	/* b directly follows a */
	g_assert_cmpuint (a.offset + a.len, ==, b.offset);
	memcpy (file->data + a.offset, copy_b, b.len);
	memcpy (file->data + a.offset + b.len, copy_a, a.len);
	if (forge) {
		memcpy (file->data + a.offset + 5, &nine, 8);
		memcpy (file->data + a.offset + b.len + 5, &ten, 8);
		file_rechain (file, a.offset);
	}
	file_save (fx->path, file);
}

static void
test_tamper_edit_byte (Fixture *fx, gconstpointer data)
{
	tamper_flip (fx, 'E', 6, 8 + 60, 0x07);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_CHECKSUM, 6, "changed");
}

static void
test_tamper_edit_head (Fixture *fx, gconstpointer data)
{
	/* the root hash of the head after entries 5-7 */
	tamper_flip (fx, 'H', 2, 24 + 16 + 3, 0x80);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_CHECKSUM, 5, "tree head");
}

static void
test_tamper_edit_header (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);

	file->data[12] = 1; /* flags */
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_HEADER, PPN_LEDGER_NO_INDEX, "header");
}

static void
test_tamper_delete_entry (Fixture *fx, gconstpointer data)
{
	tamper_remove (fx, 'E', 6);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ORDER, 6, "removed");
}

/* the last entry before a tree head: the head counts one more */
static void
test_tamper_delete_last_entry (Fixture *fx, gconstpointer data)
{
	tamper_remove (fx, 'E', 12);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ORDER, 12, "removed");
}

static void
test_tamper_delete_head (Fixture *fx, gconstpointer data)
{
	/* the head after entry 4: entry 5 no longer chains */
	tamper_remove (fx, 'H', 1);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_CHECKSUM, 5, "removed");
}

static void
test_tamper_swap_entries (Fixture *fx, gconstpointer data)
{
	tamper_swap (fx, FALSE);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ORDER, 9, "moved");
}

static void
test_tamper_insert_entry (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record copy = file_record (records, 'E', 2);
	Record before = file_record (records, 'E', 11);
	g_autofree guint8 *bytes = g_memdup2 (file->data + copy.offset, copy.len);

	file_insert (file, before.offset, bytes, copy.len);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ORDER, 11, "inserted");
}

static void
test_tamper_garbage_tail (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GByteArray) torn = NULL;
	static const guint8 half_record[] = {'E', 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 15, '{', '"'};

	torn = g_byte_array_new ();
	g_byte_array_append (torn, file->data, file->len);
	g_byte_array_append (file, (const guint8 *)"garbage\n", 8);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_RECORD, FIXTURE_ENTRIES, "no ledger record");
	/* too short to be the start of a record */
	g_byte_array_set_size (file, file->len - 5);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_TORN_TAIL, FIXTURE_ENTRIES, "3 bytes");

	/* what a crash inside a write leaves: the start of a record */
	g_byte_array_append (torn, half_record, sizeof half_record);
	file_save (fx->path, torn);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_TORN_TAIL, FIXTURE_ENTRIES, "ends inside");
}

static void
test_tamper_truncate (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) orig = file_load (fx->path);
	g_autoptr(GArray) records = file_records (orig);
	Record last_entry = file_record (records, 'E', 14);
	Record last_head = file_record (records, 'H', 4);
	Record head13 = file_record (records, 'H', 3);
	static const struct {
		gint which; /* 0 inside entry 14, 1 inside the last head, 2 before it, 3 inside the header */
		PpnLedgerProblem problem;
		guint64 index;
		const gchar *says;
	} cuts[] = {
		{0, PPN_LEDGER_PROBLEM_TORN_TAIL, 14, "ends inside its record"},
		{1, PPN_LEDGER_PROBLEM_TORN_TAIL, 13, "ends inside a tree head record"},
		{2, PPN_LEDGER_PROBLEM_TORN_TAIL, 13, "no tree head covers the last 2 entries"},
		{3, PPN_LEDGER_PROBLEM_TORN_TAIL, PPN_LEDGER_NO_INDEX, "header"},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cuts); i++) {
		g_autoptr(GByteArray) file = g_byte_array_new ();
		gsize len = cuts[i].which == 0	 ? last_entry.offset + last_entry.len / 2
			    : cuts[i].which == 1 ? last_head.offset + last_head.len - 1
			    : cuts[i].which == 2 ? last_head.offset
						 : 20;

		g_byte_array_append (file, orig->data, (guint)len);
		file_save (fx->path, file);
		assert_tampered (fx, NULL, cuts[i].problem, cuts[i].index, cuts[i].says);
	}
	{
		/* cut cleanly after a head: only a head seen before says so */
		g_autoptr(GByteArray) file = g_byte_array_new ();
		g_byte_array_append (file, orig->data, (guint)(head13.offset + head13.len));
		file_save (fx->path, file);
		assert_verifies (fx, NULL, 13, 4);
		assert_verifies (fx, fixture_head (fx, 3), 13, 4);
		assert_tampered (fx, fixture_head (fx, 4), PPN_LEDGER_PROBLEM_PUBLISHED, 13,
				 "removed from its end");
	}
}

/* an entry rewritten, its checksum and all after it recomputed: only the
 * signed root catches it, and it cannot tell which of its batch it was */
static void
test_tamper_forge_entry (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record r = file_record (records, 'E', 9);
	gchar *op = memmem (file->data + r.offset, r.len, "create", 6);

	g_assert_nonnull (op);
	memcpy (op, "delete", 6);
	file_rechain (file, r.offset);
	file_save (fx->path, file);
	/* entries 8-12 are one batch: 8 is the first not covered */
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ROOT, 8, "8 to 12 was changed");
}

/* two entries swapped with their indices rewritten and the chain mended */
static void
test_tamper_forge_reorder (Fixture *fx, gconstpointer data)
{
	tamper_swap (fx, TRUE);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_ROOT, 8, "moved");
}

static void
test_tamper_bad_signature (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record r = file_record (records, 'H', 3); /* after entries 8-12 */
	g_autoptr(PpnTreeHead) head = file_head (file, r);

	head_flip_signature (head, 77);
	file_replace_head (file, r, head);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_SIGNATURE, 8, "not signed by the ledger key");
}

static void
test_tamper_other_key (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	g_autoptr(GArray) records = file_records (file);
	Record r = file_record (records, 'H', 3);
	g_autoptr(PpnTreeHead) head = file_head (file, r);
	g_autoptr(GBytes) other_key = NULL;
	g_autoptr(GBytes) other_pub = NULL;

	make_key (&other_key, &other_pub);
	{
		/* the whole ledger against another key fails at its first head */
		g_auto(PpnLedgerVerifyResult) result = {0};
		g_autoptr(GError) error = NULL;
		g_assert_false (ppn_file_ledger_verify (fx->path, other_pub, NULL, &result, &error));
		g_assert_cmpint (result.problem, ==, PPN_LEDGER_PROBLEM_SIGNATURE);
		g_assert_cmpuint (result.bad_index, ==, 0);
	}
	g_assert_true (ppn_tree_head_sign (head, other_key, NULL));
	file_replace_head (file, r, head);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_SIGNATURE, 8, "not signed by the ledger key");
}

/* a head signed with the ledger's own key (stolen, say) that goes back */
static void
test_tamper_size_backwards (Fixture *fx, gconstpointer data)
{
	g_autoptr(GByteArray) file = file_load (fx->path);
	PpnTreeHead *h13 = fixture_head (fx, 3);
	PpnTreeHead *h15 = fixture_head (fx, 4);
	g_autoptr(PpnTreeHead) back = signed_head (13, h13->root_hash, h15->timestamp, fx->key);
	g_autoptr(PpnTreeHead) older = signed_head (15, h15->root_hash, h15->timestamp - 1, fx->key);

	file_append_head (file, back);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_HEAD_ORDER, FIXTURE_ENTRIES,
			 "goes back from tree size 15 to 13");

	/* and one that repeats the size at an older time */
	g_byte_array_set_size (
		file, file->len - (5 + PPN_TREE_HEAD_SIGNED_DATA_SIZE + PPN_TREE_HEAD_SIGNATURE_SIZE + HASH));
	file_append_head (file, older);
	file_save (fx->path, file);
	assert_tampered (fx, NULL, PPN_LEDGER_PROBLEM_HEAD_ORDER, FIXTURE_ENTRIES, "goes back");
}

/* another ledger under the same key that does not hold the published
 * tree: rewritten after the head was published */
static void
test_tamper_published_inconsistent (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = NULL;
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	/* a key holder can write a ledger anew: from its bare header */
	{
		g_autoptr(GByteArray) file = file_load (fx->path);
		g_byte_array_set_size (file, HEADER_SIZE);
		file_save (fx->path, file);
	}
	ledger = ppn_file_ledger_open (fx->dir, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < FIXTURE_ENTRIES; i++)
		g_ptr_array_add (entries, entry_bytes (i == 3 ? 1000 : i));
	g_assert_true (ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error));
	g_clear_object (&ledger);
	unprotect (fx->path);
	assert_verifies (fx, NULL, FIXTURE_ENTRIES, 1);
	/* entry 3 differs */
	assert_tampered (fx, fixture_head (fx, 0), PPN_LEDGER_PROBLEM_PUBLISHED, PPN_LEDGER_NO_INDEX,
			 "rewritten");
	assert_tampered (fx, fixture_head (fx, 4), PPN_LEDGER_PROBLEM_PUBLISHED, PPN_LEDGER_NO_INDEX,
			 "rewritten");
}

static guint
file_mode (const gchar *path)
{
	struct stat st;

	g_assert_cmpint (stat (path, &st), ==, 0);
	return st.st_mode & 07777;
}

static void
assert_heads_equal (const PpnTreeHead *a, const PpnTreeHead *b)
{
	g_assert_cmpuint (a->tree_size, ==, b->tree_size);
	g_assert_cmpint (a->timestamp, ==, b->timestamp);
	g_assert_cmpmem (a->root_hash, HASH, b->root_hash, HASH);
	g_assert_true (g_bytes_equal (a->signature, b->signature));
}

/* every entry reads back, and its inclusion in @head verifies */
static void
assert_entries (PpnLedger *ledger, const PpnTreeHead *head)
{
	g_autoptr(GBytes) pub = ppn_ledger_get_public_key (ledger);
	g_autoptr(GError) error = NULL;

	for (guint64 i = 0; i < head->tree_size; i++) {
		g_autoptr(GBytes) entry = ppn_ledger_get_entry (ledger, i, &error);
		g_autoptr(GBytes) expected = entry_bytes (i);
		g_autoptr(GPtrArray) proof = ppn_ledger_prove_inclusion (ledger, i, head->tree_size, &error);

		g_assert_no_error (error);
		g_assert_true (g_bytes_equal (entry, expected));
		g_assert_true (ppn_ledger_verify_inclusion (head, pub, entry, i, proof, &error));
		g_assert_no_error (error);
	}
}

static void
test_file_ledger_round_trip (void)
{
	g_autofree gchar *dir = make_dir ();
	g_autofree gchar *key_path = g_build_filename (dir, "ledger.key", NULL);
	g_autofree gchar *pub_path = g_build_filename (dir, "ledger.pub", NULL);
	g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
	g_autoptr(PpnTreeHead) first = NULL;
	g_autoptr(PpnTreeHead) second = NULL;
	g_autoptr(GBytes) pub = NULL;
	g_autoptr(GPtrArray) consistency = NULL;

	g_assert_no_error (error);
	g_assert_cmphex (file_mode (key_path), ==, 0600);
	g_assert_cmphex (file_mode (path), ==, 0600);
	g_assert_true (g_file_test (pub_path, G_FILE_TEST_IS_REGULAR));
	pub = ppn_ledger_get_public_key (PPN_LEDGER (ledger));
	{
		g_autoptr(GBytes) on_disk = read_bytes (pub_path);
		g_assert_true (g_bytes_equal (pub, on_disk));
	}

	/* empty */
	g_assert_null (ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
	g_clear_error (&error);
	g_assert_null (ppn_ledger_get_entry (PPN_LEDGER (ledger), 0, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
	g_clear_error (&error);

	g_assert_true (append_range (PPN_LEDGER (ledger), 0, 3, &error));
	first = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
	g_assert_no_error (error);
	g_assert_cmpuint (first->tree_size, ==, 3);
	g_assert_true (ppn_tree_head_verify (first, pub, &error));
	g_assert_true (append_range (PPN_LEDGER (ledger), 3, 2, &error));
	second = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
	g_assert_cmpuint (second->tree_size, ==, 5);
	g_assert_cmpint (second->timestamp, >=, first->timestamp);
	assert_entries (PPN_LEDGER (ledger), first);
	assert_entries (PPN_LEDGER (ledger), second);
	consistency = ppn_ledger_prove_consistency (PPN_LEDGER (ledger), 3, 5, &error);
	g_assert_no_error (error);
	g_assert_true (ppn_ledger_verify_consistency (first, second, pub, consistency, &error));
	g_assert_no_error (error);
	g_assert_false (ppn_ledger_verify_consistency (second, first, pub, consistency, NULL));
	/* beyond the ledger */
	g_assert_null (ppn_ledger_prove_inclusion (PPN_LEDGER (ledger), 0, 6, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_assert_null (ppn_ledger_prove_inclusion (PPN_LEDGER (ledger), 5, 5, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_assert_null (ppn_ledger_prove_consistency (PPN_LEDGER (ledger), 3, 6, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_assert_null (ppn_ledger_get_entry (PPN_LEDGER (ledger), 5, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
	g_clear_error (&error);

	/* one writer at a time */
	{
		g_autoptr(PpnFileLedger) again = ppn_file_ledger_open (dir, &error);
		g_assert_null (again);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_CONFLICT);
		g_clear_error (&error);
	}

	/* reopened: the same heads, entries and proofs; indices go on */
	g_clear_object (&ledger);
	ledger = ppn_file_ledger_open (dir, &error);
	g_assert_no_error (error);
	{
		g_autoptr(PpnTreeHead) head = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
		g_autoptr(GBytes) pub_again = ppn_ledger_get_public_key (PPN_LEDGER (ledger));
		g_autoptr(GPtrArray) consistency_again =
			ppn_ledger_prove_consistency (PPN_LEDGER (ledger), 3, 5, &error);

		assert_heads_equal (head, second);
		g_assert_true (g_bytes_equal (pub, pub_again));
		g_assert_true (proof_equal (consistency, consistency_again));
	}
	assert_entries (PPN_LEDGER (ledger), first);
	assert_entries (PPN_LEDGER (ledger), second);
	g_assert_true (append_range (PPN_LEDGER (ledger), 5, 1, &error));
	g_clear_object (&ledger);
	ledger = ppn_file_ledger_open (dir, &error);
	g_assert_no_error (error);
	{
		g_autoptr(PpnTreeHead) head = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
		g_auto(PpnLedgerVerifyResult) result = {0};

		g_assert_cmpuint (head->tree_size, ==, 6);
		assert_entries (PPN_LEDGER (ledger), head);
		g_assert_true (ppn_file_ledger_verify (path, pub, second, &result, &error));
		g_assert_no_error (error);
		g_assert_cmpuint (result.entries, ==, 6);
		g_assert_cmpuint (result.tree_heads, ==, 3);
		assert_heads_equal (result.newest_head, head);
	}
	g_clear_object (&ledger);
	ppn_test_rm_rf (dir);
}

static void
test_file_ledger_refusals (void)
{
	g_autofree gchar *dir = make_dir ();
	g_autofree gchar *key_path = g_build_filename (dir, "ledger.key", NULL);
	g_autofree gchar *pub_path = g_build_filename (dir, "ledger.pub", NULL);
	g_autofree gchar *saved_key = g_build_filename (dir, "saved.key", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GBytes) other_key = NULL;
	g_autoptr(GBytes) other_pub = NULL;

	g_assert_no_error (error);
	g_assert_false (ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	/* an empty entry is an entry */
	g_ptr_array_add (entries, g_bytes_new (NULL, 0));
	g_assert_true (ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error));
	g_assert_no_error (error);
	{
		g_autoptr(GBytes) back = ppn_ledger_get_entry (PPN_LEDGER (ledger), 0, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (g_bytes_get_size (back), ==, 0);
	}
	head = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
	g_ptr_array_add (entries, g_bytes_new_take (g_malloc0 (PPN_FILE_LEDGER_ENTRY_MAX + 1),
						    PPN_FILE_LEDGER_ENTRY_MAX + 1));
	g_assert_false (ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_PAYLOAD_TOO_LARGE);
	g_clear_error (&error);
	{
		/* nothing of the refused append counts */
		g_autoptr(PpnTreeHead) now = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
		assert_heads_equal (now, head);
	}
	g_clear_object (&ledger);

	/* a ledger with records and no key is not given a new key */
	g_assert_cmpint (g_rename (key_path, saved_key), ==, 0);
	ledger = ppn_file_ledger_open (dir, &error);
	g_assert_null (ledger);
	g_assert_nonnull (error);
	g_assert_nonnull (strstr (error->message, "new key"));
	g_clear_error (&error);
	g_assert_false (g_file_test (key_path, G_FILE_TEST_EXISTS));
	g_assert_cmpint (g_rename (saved_key, key_path), ==, 0);

	/* a ledger removed or emptied is not started anew under its key */
	{
		g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
		g_autofree gchar *saved = g_build_filename (dir, "saved", NULL);

		unprotect (path);
		g_assert_cmpint (g_rename (path, saved), ==, 0);
		ledger = ppn_file_ledger_open (dir, &error);
		g_assert_null (ledger);
		g_assert_nonnull (strstr (error->message, "was removed or emptied"));
		g_clear_error (&error);
		g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
		g_assert_true (g_file_set_contents (path, "", 0, NULL));
		ledger = ppn_file_ledger_open (dir, &error);
		g_assert_null (ledger);
		g_assert_nonnull (strstr (error->message, "was removed or emptied"));
		g_clear_error (&error);
		g_assert_cmpint (g_rename (saved, path), ==, 0);
	}
	{
		/* a ledger of a header alone signed nothing yet: a lost key is made anew */
		g_autofree gchar *other = make_dir ();
		g_autofree gchar *other_key_path = g_build_filename (other, "ledger.key", NULL);
		g_autoptr(PpnFileLedger) fresh = ppn_file_ledger_open (other, &error);

		g_assert_no_error (error);
		g_clear_object (&fresh);
		g_assert_cmpint (g_unlink (other_key_path), ==, 0);
		fresh = ppn_file_ledger_open (other, &error);
		g_assert_no_error (error);
		g_assert_true (g_file_test (other_key_path, G_FILE_TEST_IS_REGULAR));
		g_clear_object (&fresh);
		ppn_test_rm_rf (other);
	}

	/* a public key that is not the key's */
	make_key (&other_key, &other_pub);
	{
		g_autoptr(GBytes) pub = read_bytes (pub_path);
		g_assert_true (g_file_set_contents (pub_path, g_bytes_get_data (other_pub, NULL),
						    (gssize)g_bytes_get_size (other_pub), NULL));
		ledger = ppn_file_ledger_open (dir, &error);
		g_assert_null (ledger);
		g_assert_nonnull (strstr (error->message, "is not the public key"));
		g_clear_error (&error);
		/* a missing one is made again */
		g_assert_cmpint (g_unlink (pub_path), ==, 0);
		ledger = ppn_file_ledger_open (dir, &error);
		g_assert_no_error (error);
		{
			g_autoptr(GBytes) again = read_bytes (pub_path);
			g_assert_true (g_bytes_equal (pub, again));
		}
	}
	g_clear_object (&ledger);

	/* not a ledger */
	{
		g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
		g_autoptr(GBytes) pub = read_bytes (pub_path);
		g_auto(PpnLedgerVerifyResult) result = {0};

		unprotect (path);
		g_assert_true (g_file_set_contents (path, "{\"not\":\"a ledger\"}\n", -1, NULL));
		ledger = ppn_file_ledger_open (dir, &error);
		g_assert_null (ledger);
		g_assert_nonnull (strstr (error->message, "not a ppn ledger"));
		g_clear_error (&error);
		g_assert_false (ppn_file_ledger_verify (path, pub, NULL, &result, &error));
		g_assert_cmpint (result.problem, ==, PPN_LEDGER_PROBLEM_HEADER);
		g_clear_error (&error);
		ppn_ledger_verify_result_clear (&result);
		g_assert_false (ppn_file_ledger_verify ("/nonexistent/ledger", pub, NULL, &result, &error));
		g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
		g_assert_cmpint (result.problem, ==, PPN_LEDGER_PROBLEM_IO);
	}
	ppn_test_rm_rf (dir);
}

/* where the filesystem and our capabilities allow it, the file itself
 * refuses anything but appends */
static void
test_file_ledger_append_only (void)
{
	g_autofree gchar *dir = make_dir ();
	g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
	int fd, flags = 0;

	g_assert_no_error (error);
	g_assert_true (append_range (PPN_LEDGER (ledger), 0, 2, &error));
	fd = open (path, O_RDONLY | O_CLOEXEC);
	g_assert_cmpint (fd, >=, 0);
	if (ioctl (fd, FS_IOC_GETFLAGS, &flags) < 0 || (flags & FS_APPEND_FL) == 0) {
		close (fd);
		g_clear_object (&ledger);
		ppn_test_rm_rf (dir);
		g_test_skip ("the ledger is not append-only here (filesystem or capabilities)");
		return;
	}
	close (fd);
	g_assert_cmpint (open (path, O_WRONLY | O_CLOEXEC), ==, -1);
	g_assert_cmpint (errno, ==, EPERM);
	g_assert_cmpint (truncate (path, 10), ==, -1);
	g_assert_cmpint (errno, ==, EPERM);
	g_assert_cmpint (g_unlink (path), ==, -1);
	g_assert_cmpint (errno, ==, EPERM);
	/* appends still go */
	g_assert_true (append_range (PPN_LEDGER (ledger), 2, 2, &error));
	g_assert_no_error (error);
	g_clear_object (&ledger);
	ppn_test_rm_rf (dir);
}

typedef struct {
	PpnLedger *ledger;
	guint batches;
	gboolean failed;
} Writer;

static gpointer
writer_thread (gpointer data)
{
	Writer *w = data;

	for (guint b = 0; b < w->batches; b++) {
		g_autoptr(GError) error = NULL;
		if (!append_range (w->ledger, (guint64)b * 5, 5, &error)) {
			w->failed = TRUE;
			break;
		}
	}
	return NULL;
}

/* appends in a thread while the main thread reads heads, entries and
 * proofs: what it sees is always a signed head it can prove against */
static void
test_file_ledger_threads (void)
{
	g_autofree gchar *dir = make_dir ();
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
	g_autoptr(GBytes) pub = NULL;
	Writer w = {NULL, 60, FALSE};
	GThread *thread;
	guint reads = 0;
	GRand *rand = g_rand_new_with_seed (9162);

	g_assert_no_error (error);
	w.ledger = PPN_LEDGER (ledger);
	pub = ppn_ledger_get_public_key (w.ledger);
	thread = g_thread_new ("ledger-writer", writer_thread, &w);
	while (TRUE) {
		g_autoptr(PpnTreeHead) head = ppn_ledger_get_tree_head (w.ledger, NULL);
		guint64 index;

		if (head == NULL)
			continue;
		g_assert_true (ppn_tree_head_verify (head, pub, NULL));
		index = (guint64)g_rand_int_range (rand, 0, (gint32)head->tree_size);
		{
			g_autoptr(GBytes) entry = ppn_ledger_get_entry (w.ledger, index, &error);
			g_autoptr(GPtrArray) proof =
				ppn_ledger_prove_inclusion (w.ledger, index, head->tree_size, &error);
			g_assert_no_error (error);
			g_assert_true (ppn_ledger_verify_inclusion (head, pub, entry, index, proof, &error));
			g_assert_no_error (error);
		}
		reads++;
		if (head->tree_size == (guint64)w.batches * 5)
			break;
	}
	g_thread_join (thread);
	g_assert_false (w.failed);
	g_test_message ("%u reads during %u appends", reads, w.batches);
	g_rand_free (rand);
	g_clear_object (&ledger);
	ppn_test_rm_rf (dir);
}

static gboolean
run_ok (const gchar *cmd)
{
	const gchar *argv[] = {"sh", "-c", cmd, NULL};
	gint status = -1;
	g_autofree gchar *out = ppn_test_run (argv, &status);

	return g_spawn_check_wait_status (status, NULL);
}

static guint64
file_size (const gchar *path)
{
	struct stat st;

	g_assert_cmpint (stat (path, &st), ==, 0);
	return (guint64)st.st_size;
}

/* an append that does not fit takes nothing with it: the file is as it
 * was, the ledger goes on as it was, and appends work once there is room */
static void
test_file_ledger_disk_full (void)
{
	g_autofree gchar *base = make_dir ();
	g_autofree gchar *dir = g_build_filename (base, "full", NULL);
	g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
	g_autofree gchar *filler = g_build_filename (dir, "filler", NULL);
	g_autofree gchar *mount = g_strdup_printf ("mount -t tmpfs -o size=64k ppn-test-ledger '%s'", dir);
	g_autofree gchar *fill =
		g_strdup_printf ("dd if=/dev/zero of='%s' bs=4k count=4 2>/dev/null", filler);
	g_autofree gchar *umount = g_strdup_printf ("umount -l '%s'", dir);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = NULL;
	g_autoptr(PpnTreeHead) before = NULL;
	guint64 next = 0, size_before;
	gboolean full = FALSE;

	g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
	if (!run_ok (mount)) {
		ppn_test_rm_rf (base);
		g_test_skip ("cannot mount a tmpfs here (not root?)");
		return;
	}
	g_assert_true (run_ok (fill));
	ledger = ppn_file_ledger_open (dir, &error);
	g_assert_no_error (error);
	/* batches of 10 entries of some 200 bytes until the disk is full */
	while (!full) {
		g_clear_pointer (&before, ppn_tree_head_free);
		before = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), NULL);
		size_before = file_size (path);
		if (append_range (PPN_LEDGER (ledger), next, 10, &error)) {
			next += 10;
			g_assert_cmpuint (next, <, 10000);
			continue;
		}
		full = TRUE;
	}
	g_test_message ("full after %" G_GUINT64_FORMAT " entries: %s", next, error->message);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_assert_nonnull (strstr (error->message, g_strerror (ENOSPC)));
	g_clear_error (&error);
	g_assert_cmpuint (file_size (path), ==, size_before);
	{
		g_autoptr(PpnTreeHead) now = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
		assert_heads_equal (now, before);
		assert_entries (PPN_LEDGER (ledger), now);
		g_assert_null (ppn_ledger_get_entry (PPN_LEDGER (ledger), next, &error));
		g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
		g_clear_error (&error);
	}
	/* room again: the indices go on where they were */
	g_assert_cmpint (g_unlink (filler), ==, 0);
	g_assert_true (append_range (PPN_LEDGER (ledger), next, 10, &error));
	g_assert_no_error (error);
	next += 10;
	g_clear_object (&ledger);
	ledger = ppn_file_ledger_open (dir, &error);
	g_assert_no_error (error);
	{
		g_autoptr(PpnTreeHead) now = ppn_ledger_get_tree_head (PPN_LEDGER (ledger), &error);
		g_assert_cmpuint (now->tree_size, ==, next);
		assert_entries (PPN_LEDGER (ledger), now);
	}
	g_clear_object (&ledger);
	ppn_test_rm_rf (dir);
	g_assert_true (run_ok (umount));
	ppn_test_rm_rf (base);
}

/* ---- ppnctl ledger ------------------------------------------------------ */

static gchar *ppnctl_path;

/* runs the built ppnctl, without PPN_* from our environment */
static int
run_ppnctl (gchar **out, gchar **err, ...) G_GNUC_NULL_TERMINATED;
static int
run_ppnctl (gchar **out, gchar **err, ...)
{
	g_autoptr(GSubprocessLauncher) launcher =
		g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *stdout_text = NULL;
	g_autofree gchar *stderr_text = NULL;
	va_list ap;

	g_subprocess_launcher_unsetenv (launcher, "PPN_URL");
	g_subprocess_launcher_unsetenv (launcher, "PPN_CA");
	g_subprocess_launcher_unsetenv (launcher, "PPN_TOKEN");
	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	g_ptr_array_add (argv, ppnctl_path);
	va_start (ap, err);
	for (const gchar *a = va_arg (ap, const gchar *); a != NULL; a = va_arg (ap, const gchar *))
		g_ptr_array_add (argv, (gpointer)a);
	va_end (ap);
	g_ptr_array_add (argv, NULL);
	proc = g_subprocess_launcher_spawnv (launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error (error);
	g_assert_true (g_subprocess_communicate_utf8 (proc, NULL, NULL, &stdout_text, &stderr_text, &error));
	g_assert_no_error (error);
	g_assert_true (g_subprocess_get_if_exited (proc));
	if (out != NULL)
		*out = g_steal_pointer (&stdout_text);
	if (err != NULL)
		*err = g_steal_pointer (&stderr_text);
	return g_subprocess_get_exit_status (proc);
}

static void
assert_exit (int got, int expected, const gchar *what, const gchar *err)
{
	if (got != expected)
		g_test_fail_printf ("%s: expected exit %d, got %d (stderr: %s)", what, expected, got,
				    err != NULL ? err : "");
}

static gchar *
write_json (Fixture *fx, const gchar *name, JsonNode *node)
{
	gchar *path = g_build_filename (fx->dir, name, NULL);
	g_autofree gchar *data = ppn_json_to_data (node, NULL);

	g_assert_true (g_file_set_contents (path, data, -1, NULL));
	return path;
}

static gchar *
write_head (Fixture *fx, const gchar *name, const PpnTreeHead *head)
{
	g_autoptr(JsonNode) node = ppn_tree_head_to_json (head);

	return write_json (fx, name, node);
}

static JsonObject *
parse_object (const gchar *text)
{
	g_autoptr(JsonNode) node = json_from_string (text, NULL);

	g_assert_nonnull (node);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
	return json_object_ref (json_node_get_object (node));
}

/* what an operator or a tenant runs: exit codes, the named entry */
static void
test_ppnctl_ledger (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *pub_path = g_build_filename (fx->dir, "ledger.pub", NULL);
	g_autofree gchar *h13 = write_head (fx, "h13.json", fixture_head (fx, 3));
	g_autofree gchar *h15 = write_head (fx, "h15.json", fixture_head (fx, 4));
	g_autofree gchar *consistency = NULL;
	g_autofree gchar *inclusion = NULL;
	g_autofree gchar *entry = g_build_filename (fx->dir, "entry9", NULL);
	g_autoptr(GError) error = NULL;
	gchar *out = NULL, *err = NULL;
	int rc;

	if (!g_file_test (ppnctl_path, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_fail_printf ("ppnctl not found at %s (set PPN_BUILDDIR)", ppnctl_path);
		return;
	}
	{
		g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (fx->dir, &error);
		g_autoptr(GPtrArray) p1 = ppn_ledger_prove_consistency (PPN_LEDGER (ledger), 13, 15, &error);
		g_autoptr(GPtrArray) p2 = ppn_ledger_prove_inclusion (PPN_LEDGER (ledger), 9, 15, &error);
		g_autoptr(GBytes) e9 = ppn_ledger_get_entry (PPN_LEDGER (ledger), 9, &error);
		g_autoptr(JsonNode) n1 = NULL;
		g_autoptr(JsonNode) n2 = NULL;
		g_autoptr(JsonObject) wrapped = json_object_new ();

		g_assert_no_error (error);
		n1 = ppn_merkle_proof_to_json (p1);
		consistency = write_json (fx, "consistency.json", n1);
		/* as the API might answer it: the proof as a member */
		json_object_set_member (wrapped, "proof", ppn_merkle_proof_to_json (p2));
		n2 = json_node_init_object (json_node_alloc (), wrapped);
		inclusion = write_json (fx, "inclusion.json", n2);
		g_assert_true (g_file_set_contents (entry, g_bytes_get_data (e9, NULL),
						    (gssize)g_bytes_get_size (e9), NULL));
	}

	rc = run_ppnctl (&out, &err, "ledger", "verify", fx->dir, NULL);
	assert_exit (rc, 0, "verify", err);
	g_assert_nonnull (strstr (out, "15 verified"));
	g_assert_nonnull (strstr (out, "tree size 15"));
	g_assert_nonnull (strstr (out, "beside the ledger"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	rc = run_ppnctl (&out, &err, "ledger", "verify", fx->path, "--key", pub_path, "--tree-head", h13,
			 NULL);
	assert_exit (rc, 0, "verify --tree-head", err);
	g_assert_nonnull (strstr (out, "holds the tree of 13 entries"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	rc = run_ppnctl (&out, &err, "--json", "ledger", "verify", fx->dir, NULL);
	assert_exit (rc, 0, "verify --json", err);
	{
		g_autoptr(JsonObject) obj = parse_object (out);
		g_assert_true (json_object_get_boolean_member (obj, "verified"));
		g_assert_cmpint (json_object_get_int_member (obj, "entries"), ==, 15);
		g_assert_cmpint (json_object_get_int_member (obj, "tree_heads"), ==, 5);
	}
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	rc = run_ppnctl (&out, &err, "ledger", "show-head", fx->dir, NULL);
	assert_exit (rc, 0, "show-head", err);
	{
		g_autoptr(JsonNode) node = json_from_string (out, NULL);
		g_autoptr(PpnTreeHead) head = ppn_tree_head_from_json (node, &error);
		g_assert_no_error (error);
		assert_heads_equal (head, fixture_head (fx, 4));
	}
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	rc = run_ppnctl (&out, &err, "ledger", "consistency", h13, h15, "--proof", consistency, "--key",
			 pub_path, NULL);
	assert_exit (rc, 0, "consistency", err);
	g_assert_nonnull (strstr (out, "Consistent"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = run_ppnctl (&out, &err, "ledger", "consistency", h15, h13, "--proof", consistency, "--key",
			 pub_path, NULL);
	assert_exit (rc, 6, "consistency backwards", err);
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	rc = run_ppnctl (&out, &err, "ledger", "inclusion", entry, "--index", "9", "--tree-head", h15,
			 "--proof", inclusion, "--key", pub_path, NULL);
	assert_exit (rc, 0, "inclusion", err);
	g_assert_nonnull (strstr (out, "Included"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = run_ppnctl (&out, &err, "ledger", "inclusion", entry, "--index", "8", "--tree-head", h15,
			 "--proof", inclusion, "--key", pub_path, NULL);
	assert_exit (rc, 6, "inclusion at the wrong index", err);
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	/* usage, and a ledger that is not there */
	rc = run_ppnctl (&out, &err, "ledger", "verify", NULL);
	assert_exit (rc, 2, "verify without a ledger", err);
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = run_ppnctl (&out, &err, "ledger", "consistency", h13, h15, NULL);
	assert_exit (rc, 2, "consistency without --proof", err);
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	{
		g_autofree gchar *missing = g_build_filename (fx->dir, "missing", NULL);
		rc = run_ppnctl (&out, &err, "ledger", "verify", missing, "--key", pub_path, NULL);
		assert_exit (rc, 3, "verify a missing ledger", err);
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);
	}

	/* tampered: exit 6 and the entry named */
	tamper_flip (fx, 'E', 6, 8 + 60, 0x07);
	rc = run_ppnctl (&out, &err, "ledger", "verify", fx->dir, NULL);
	assert_exit (rc, 6, "verify a tampered ledger", err);
	g_test_message ("stderr: %s", err);
	g_assert_true (g_str_has_prefix (err, "ppnctl: "));
	g_assert_nonnull (strstr (err, "entry 6: "));
	g_assert_nonnull (strstr (out, "5 verified before the problem"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = run_ppnctl (&out, &err, "--json", "ledger", "verify", fx->dir, NULL);
	assert_exit (rc, 6, "verify --json a tampered ledger", err);
	{
		g_autoptr(JsonObject) obj = parse_object (out);
		g_assert_false (json_object_get_boolean_member (obj, "verified"));
		g_assert_cmpstr (json_object_get_string_member (obj, "problem"), ==, "checksum");
		g_assert_cmpint (json_object_get_int_member (obj, "bad_index"), ==, 6);
	}
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = run_ppnctl (&out, &err, "ledger", "show-head", fx->dir, NULL);
	assert_exit (rc, 6, "show-head of a tampered ledger", err);
	g_assert_cmpstr (out, ==, "");
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
}

/* ---- main --------------------------------------------------------------- */

static void
add_tamper_test (const gchar *path, void (*fn) (Fixture *, gconstpointer))
{
	g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown);
}

int
main (int argc, char **argv)
{
	const gchar *builddir = g_getenv ("PPN_BUILDDIR");
	int ret;

	g_test_init (&argc, &argv, NULL);
	if (builddir != NULL)
		ppnctl_path = g_build_filename (builddir, "ppnctl", NULL);
	else
		ppnctl_path = g_test_build_filename (G_TEST_BUILT, "..", "ppnctl", NULL);
	g_test_add_func ("/merkle/known-answers", test_merkle_known_answers);
	g_test_add_func ("/merkle/consistency-edges", test_merkle_consistency_edges);
	g_test_add_func ("/merkle/brute-force", test_merkle_brute_force);
	g_test_add_func ("/merkle/truncate", test_merkle_truncate);
	g_test_add_func ("/merkle/large-tree", test_merkle_large_tree);
	g_test_add_func ("/merkle/proof-json", test_merkle_proof_json);
	g_test_add_func ("/tree-head/signed-data", test_tree_head_signed_data);
	g_test_add_func ("/tree-head/json", test_tree_head_json);
	g_test_add_func ("/tree-head/sign-verify", test_tree_head_sign_verify);
	g_test_add_func ("/ledger/inclusion-needs-signed-head", test_inclusion_needs_signed_head);
	g_test_add_func ("/file-ledger/round-trip", test_file_ledger_round_trip);
	g_test_add_func ("/file-ledger/refusals", test_file_ledger_refusals);
	g_test_add_func ("/file-ledger/append-only", test_file_ledger_append_only);
	g_test_add_func ("/file-ledger/threads", test_file_ledger_threads);
	g_test_add_func ("/file-ledger/disk-full", test_file_ledger_disk_full);
	add_tamper_test ("/file-ledger/tamper/none", test_tamper_none);
	add_tamper_test ("/file-ledger/tamper/edit-byte", test_tamper_edit_byte);
	add_tamper_test ("/file-ledger/tamper/edit-head", test_tamper_edit_head);
	add_tamper_test ("/file-ledger/tamper/edit-header", test_tamper_edit_header);
	add_tamper_test ("/file-ledger/tamper/delete-entry", test_tamper_delete_entry);
	add_tamper_test ("/file-ledger/tamper/delete-last-entry", test_tamper_delete_last_entry);
	add_tamper_test ("/file-ledger/tamper/delete-head", test_tamper_delete_head);
	add_tamper_test ("/file-ledger/tamper/swap-entries", test_tamper_swap_entries);
	add_tamper_test ("/file-ledger/tamper/insert-entry", test_tamper_insert_entry);
	add_tamper_test ("/file-ledger/tamper/garbage-tail", test_tamper_garbage_tail);
	add_tamper_test ("/file-ledger/tamper/truncate", test_tamper_truncate);
	add_tamper_test ("/file-ledger/tamper/forge-entry", test_tamper_forge_entry);
	add_tamper_test ("/file-ledger/tamper/forge-reorder", test_tamper_forge_reorder);
	add_tamper_test ("/file-ledger/tamper/bad-signature", test_tamper_bad_signature);
	add_tamper_test ("/file-ledger/tamper/other-key", test_tamper_other_key);
	add_tamper_test ("/file-ledger/tamper/size-backwards", test_tamper_size_backwards);
	add_tamper_test ("/file-ledger/tamper/published-inconsistent", test_tamper_published_inconsistent);
	add_tamper_test ("/ppnctl/ledger", test_ppnctl_ledger);
	ret = g_test_run ();
	g_free (ppnctl_path);
	return ret;
}
