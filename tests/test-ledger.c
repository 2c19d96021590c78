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
#include "ppn-json.h"
#include "ppn-ledger.h"
#include "ppn-merkle.h"

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
	g_assert_nonnull (strstr (g_bytes_get_data (key, NULL), "BEGIN PRIVATE KEY"));
	g_assert_nonnull (strstr (g_bytes_get_data (pub, NULL), "BEGIN PUBLIC KEY"));
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

/* ---- main --------------------------------------------------------------- */

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
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
	return g_test_run ();
}
