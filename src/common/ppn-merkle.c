#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-merkle.h"

/* leaves up to this size are hashed from a copy on the stack */
#define PPN_MERKLE_STACK_LEAF 2048

typedef struct {
	guint8 b[PPN_MERKLE_HASH_SIZE];
} PpnMerkleHash;

/* levels[k][i] is the hash of the complete subtree of leaves
 * [i * 2^k, (i + 1) * 2^k); level 0 holds the leaf hashes. Every complete
 * subtree is hashed once, when its last leaf is appended, so the hash of
 * any range that the RFC 9162 recursion asks for is a walk down one spine:
 * O(log n) node hashes, whatever the tree size asked for. */
struct _PpnMerkleTree {
	GPtrArray *levels; /* of GArray of PpnMerkleHash */
	guint64 size;
};

void
ppn_merkle_sha256 (const void *data, gsize len, guint8 out[PPN_MERKLE_HASH_SIZE])
{
	/* SHA-256 of memory in hand fails only in a gnutls without SHA-256;
	 * these functions have no error to return, and a wrong hash would be
	 * signed into a tree head, so stop instead */
	if (gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, out) < 0)
		g_error ("gnutls cannot compute SHA-256");
}

void
ppn_merkle_leaf_hash (const guint8 *data, gsize len, guint8 out[PPN_MERKLE_HASH_SIZE])
{
	guint8 stack_buf[PPN_MERKLE_STACK_LEAF + 1];
	g_autofree guint8 *heap_buf = NULL;
	guint8 *buf = stack_buf;

	g_return_if_fail (data != NULL || len == 0);
	if (len > PPN_MERKLE_STACK_LEAF)
		buf = heap_buf = g_malloc (len + 1);
	buf[0] = 0x00;
	if (len > 0)
		memcpy (buf + 1, data, len);
	ppn_merkle_sha256 (buf, len + 1, out);
}

void
ppn_merkle_node_hash (const guint8 left[PPN_MERKLE_HASH_SIZE],
		      const guint8 right[PPN_MERKLE_HASH_SIZE],
		      guint8 out[PPN_MERKLE_HASH_SIZE])
{
	guint8 buf[1 + 2 * PPN_MERKLE_HASH_SIZE];

	buf[0] = 0x01;
	memcpy (buf + 1, left, PPN_MERKLE_HASH_SIZE);
	memcpy (buf + 1 + PPN_MERKLE_HASH_SIZE, right, PPN_MERKLE_HASH_SIZE);
	ppn_merkle_sha256 (buf, sizeof buf, out);
}

/* the largest power of two smaller than @n, for n >= 2 (RFC 9162's k) */
static guint64
ppn_merkle_split (guint64 n)
{
	return G_GUINT64_CONSTANT (1) << (63 - __builtin_clzll (n - 1));
}

static gboolean
ppn_merkle_is_power_of_two (guint64 n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

PpnMerkleTree *
ppn_merkle_tree_new (void)
{
	PpnMerkleTree *tree = g_new0 (PpnMerkleTree, 1);

	tree->levels = g_ptr_array_new_with_free_func ((GDestroyNotify)g_array_unref);
	return tree;
}

void
ppn_merkle_tree_free (PpnMerkleTree *tree)
{
	if (tree == NULL)
		return;
	g_ptr_array_unref (tree->levels);
	g_free (tree);
}

static GArray *
ppn_merkle_tree_level (PpnMerkleTree *tree, guint level)
{
	while (tree->levels->len <= level)
		g_ptr_array_add (tree->levels, g_array_new (FALSE, FALSE, sizeof (PpnMerkleHash)));
	return g_ptr_array_index (tree->levels, level);
}

void
ppn_merkle_tree_append (PpnMerkleTree *tree, const guint8 leaf_hash[PPN_MERKLE_HASH_SIZE])
{
	PpnMerkleHash h;
	guint64 index;

	g_return_if_fail (tree != NULL && leaf_hash != NULL);
	/* GArray counts in guint */
	g_return_if_fail (tree->size < G_MAXUINT);
	index = tree->size;
	memcpy (h.b, leaf_hash, PPN_MERKLE_HASH_SIZE);
	g_array_append_val (ppn_merkle_tree_level (tree, 0), h);
	/* a right child completes its parent, and so on up */
	for (guint level = 0; (index & 1) == 1; level++) {
		GArray *below = g_ptr_array_index (tree->levels, level);
		PpnMerkleHash parent;

		ppn_merkle_node_hash (g_array_index (below, PpnMerkleHash, index - 1).b, h.b, parent.b);
		h = parent;
		index >>= 1;
		g_array_append_val (ppn_merkle_tree_level (tree, level + 1), h);
	}
	tree->size++;
}

void
ppn_merkle_tree_truncate (PpnMerkleTree *tree, guint64 size)
{
	g_return_if_fail (tree != NULL);
	if (size >= tree->size)
		return;
	for (guint level = 0; level < tree->levels->len; level++)
		g_array_set_size (g_ptr_array_index (tree->levels, level), (guint)(size >> level));
	tree->size = size;
}

guint64
ppn_merkle_tree_size (PpnMerkleTree *tree)
{
	g_return_val_if_fail (tree != NULL, 0);
	return tree->size;
}

gboolean
ppn_merkle_tree_get_leaf (PpnMerkleTree *tree, guint64 index, guint8 out[PPN_MERKLE_HASH_SIZE])
{
	GArray *leaves;

	g_return_val_if_fail (tree != NULL && out != NULL, FALSE);
	if (index >= tree->size)
		return FALSE;
	leaves = g_ptr_array_index (tree->levels, 0);
	memcpy (out, g_array_index (leaves, PpnMerkleHash, index).b, PPN_MERKLE_HASH_SIZE);
	return TRUE;
}

/* MTH(D[lo:lo+n]) for a range the RFC 9162 recursion produces: @lo is a
 * multiple of the smallest power of two >= @n, so the left part of every
 * split is a complete subtree that is already hashed */
static void
ppn_merkle_tree_range_hash (PpnMerkleTree *tree, guint64 lo, guint64 n, guint8 out[PPN_MERKLE_HASH_SIZE])
{
	guint8 right[PPN_MERKLE_HASH_SIZE];
	guint64 k;

	if (ppn_merkle_is_power_of_two (n)) {
		guint level = (guint)__builtin_ctzll (n);
		GArray *hashes = g_ptr_array_index (tree->levels, level);

		memcpy (out, g_array_index (hashes, PpnMerkleHash, lo >> level).b, PPN_MERKLE_HASH_SIZE);
		return;
	}
	k = ppn_merkle_split (n);
	ppn_merkle_tree_range_hash (tree, lo + k, n - k, right);
	ppn_merkle_tree_range_hash (tree, lo, k, out);
	ppn_merkle_node_hash (out, right, out);
}

static GBytes *
ppn_merkle_tree_range_bytes (PpnMerkleTree *tree, guint64 lo, guint64 n)
{
	guint8 h[PPN_MERKLE_HASH_SIZE];

	ppn_merkle_tree_range_hash (tree, lo, n, h);
	return g_bytes_new (h, sizeof h);
}

static gboolean
ppn_merkle_tree_check_size (PpnMerkleTree *tree, guint64 tree_size, GError **error)
{
	if (tree_size > tree->size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Tree size %" G_GUINT64_FORMAT " is larger than the ledger (%" G_GUINT64_FORMAT
			       " entries)"),
			     tree_size, tree->size);
		return FALSE;
	}
	return TRUE;
}

gboolean
ppn_merkle_tree_root (PpnMerkleTree *tree,
		      guint64 tree_size,
		      guint8 out[PPN_MERKLE_HASH_SIZE],
		      GError **error)
{
	g_return_val_if_fail (tree != NULL && out != NULL, FALSE);
	if (!ppn_merkle_tree_check_size (tree, tree_size, error))
		return FALSE;
	if (tree_size == 0) {
		ppn_merkle_sha256 ("", 0, out);
		return TRUE;
	}
	ppn_merkle_tree_range_hash (tree, 0, tree_size, out);
	return TRUE;
}

/* the recursion collects the proof from the root down; proofs list it
 * from the leaf up */
static GPtrArray *
ppn_merkle_proof_reverse (GPtrArray *proof)
{
	for (guint i = 0, j = proof->len; i + 1 < j; i++, j--) {
		gpointer tmp = proof->pdata[i];
		proof->pdata[i] = proof->pdata[j - 1];
		proof->pdata[j - 1] = tmp;
	}
	return proof;
}

/* RFC 9162 2.1.3.1 PATH(m, D[n]) */
GPtrArray *
ppn_merkle_tree_prove_inclusion (PpnMerkleTree *tree, guint64 index, guint64 tree_size, GError **error)
{
	g_autoptr(GPtrArray) proof = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	guint64 lo = 0, n = tree_size, m = index;

	g_return_val_if_fail (tree != NULL, NULL);
	if (!ppn_merkle_tree_check_size (tree, tree_size, error))
		return NULL;
	if (index >= tree_size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Entry %" G_GUINT64_FORMAT " is not in the tree of %" G_GUINT64_FORMAT
			       " entries"),
			     index, tree_size);
		return NULL;
	}
	while (n > 1) {
		guint64 k = ppn_merkle_split (n);

		if (m < k) {
			g_ptr_array_add (proof, ppn_merkle_tree_range_bytes (tree, lo + k, n - k));
			n = k;
		} else {
			g_ptr_array_add (proof, ppn_merkle_tree_range_bytes (tree, lo, k));
			lo += k;
			m -= k;
			n -= k;
		}
	}
	return ppn_merkle_proof_reverse (g_steal_pointer (&proof));
}

/* RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true); empty when
 * m is 0 or n (any tree is consistent with the empty one and itself) */
GPtrArray *
ppn_merkle_tree_prove_consistency (PpnMerkleTree *tree, guint64 first, guint64 second, GError **error)
{
	g_autoptr(GPtrArray) proof = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	guint64 lo = 0, m = first, n = second;
	gboolean whole = TRUE;

	g_return_val_if_fail (tree != NULL, NULL);
	if (!ppn_merkle_tree_check_size (tree, second, error))
		return NULL;
	if (first > second) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("No consistency proof from tree size %" G_GUINT64_FORMAT
			       " back to the smaller size %" G_GUINT64_FORMAT),
			     first, second);
		return NULL;
	}
	if (first == 0 || first == second)
		return g_steal_pointer (&proof);
	while (TRUE) {
		guint64 k;

		if (m == n) {
			if (!whole)
				g_ptr_array_add (proof, ppn_merkle_tree_range_bytes (tree, lo, n));
			break;
		}
		k = ppn_merkle_split (n);
		if (m <= k) {
			g_ptr_array_add (proof, ppn_merkle_tree_range_bytes (tree, lo + k, n - k));
			n = k;
		} else {
			g_ptr_array_add (proof, ppn_merkle_tree_range_bytes (tree, lo, k));
			lo += k;
			m -= k;
			n -= k;
			whole = FALSE;
		}
	}
	return ppn_merkle_proof_reverse (g_steal_pointer (&proof));
}

/* every element of @proof is a hash */
static gboolean
ppn_merkle_proof_check (GPtrArray *proof, gboolean consistency, GError **error)
{
	for (guint i = 0; i < proof->len; i++) {
		if (g_bytes_get_size (g_ptr_array_index (proof, i)) == PPN_MERKLE_HASH_SIZE)
			continue;
		if (consistency)
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Element %u of the consistency proof is not a %d-byte hash"), i,
				     PPN_MERKLE_HASH_SIZE);
		else
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Element %u of the inclusion proof is not a %d-byte hash"), i,
				     PPN_MERKLE_HASH_SIZE);
		return FALSE;
	}
	return TRUE;
}

static const guint8 *
ppn_merkle_proof_hash (GPtrArray *proof, guint i)
{
	return g_bytes_get_data (g_ptr_array_index (proof, i), NULL);
}

/* RFC 9162 2.1.3.2 */
gboolean
ppn_merkle_verify_inclusion (const guint8 leaf_hash[PPN_MERKLE_HASH_SIZE],
			     guint64 index,
			     guint64 tree_size,
			     GPtrArray *proof,
			     const guint8 root[PPN_MERKLE_HASH_SIZE],
			     GError **error)
{
	guint8 r[PPN_MERKLE_HASH_SIZE];
	guint64 fn = index, sn;

	g_return_val_if_fail (leaf_hash != NULL && proof != NULL && root != NULL, FALSE);
	if (index >= tree_size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Entry %" G_GUINT64_FORMAT " cannot be in a tree of %" G_GUINT64_FORMAT
			       " entries"),
			     index, tree_size);
		return FALSE;
	}
	if (!ppn_merkle_proof_check (proof, FALSE, error))
		return FALSE;
	sn = tree_size - 1;
	memcpy (r, leaf_hash, PPN_MERKLE_HASH_SIZE);
	for (guint i = 0; i < proof->len; i++) {
		const guint8 *p = ppn_merkle_proof_hash (proof, i);

		if (sn == 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The inclusion proof has %u hashes, more than a tree of %"
				       G_GUINT64_FORMAT " entries needs"),
				     proof->len, tree_size);
			return FALSE;
		}
		if ((fn & 1) == 1 || fn == sn) {
			ppn_merkle_node_hash (p, r, r);
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ppn_merkle_node_hash (r, p, r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The inclusion proof has %u hashes, fewer than a tree of %" G_GUINT64_FORMAT
			       " entries needs"),
			     proof->len, tree_size);
		return FALSE;
	}
	if (memcmp (r, root, PPN_MERKLE_HASH_SIZE) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The inclusion proof of entry %" G_GUINT64_FORMAT
			       " does not lead to the root hash of the tree of %" G_GUINT64_FORMAT
			       " entries"),
			     index, tree_size);
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppn_merkle_consistency_fail (GError **error, guint64 first, guint64 second)
{
	g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
		     _("The consistency proof does not show that the tree of %" G_GUINT64_FORMAT
		       " entries is the start of the tree of %" G_GUINT64_FORMAT " entries"),
		     first, second);
	return FALSE;
}

/* RFC 9162 2.1.4.2, and the cases it leaves out: size 0 is consistent
 * with anything, a size with itself when the roots are equal, and both
 * with an empty proof only */
gboolean
ppn_merkle_verify_consistency (guint64 first,
			       guint64 second,
			       const guint8 first_root[PPN_MERKLE_HASH_SIZE],
			       const guint8 second_root[PPN_MERKLE_HASH_SIZE],
			       GPtrArray *proof,
			       GError **error)
{
	guint8 fr[PPN_MERKLE_HASH_SIZE], sr[PPN_MERKLE_HASH_SIZE];
	guint64 fn, sn;
	guint start;

	g_return_val_if_fail (first_root != NULL && second_root != NULL && proof != NULL, FALSE);
	if (first > second) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The tree shrank from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
			       " entries: no proof can make that consistent"),
			     first, second);
		return FALSE;
	}
	if (!ppn_merkle_proof_check (proof, TRUE, error))
		return FALSE;
	if (first == 0 || first == second) {
		if (proof->len != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The consistency proof from %" G_GUINT64_FORMAT " to %"
				       G_GUINT64_FORMAT " entries must be empty, and has %u hashes"),
				     first, second, proof->len);
			return FALSE;
		}
		if (first == second && memcmp (first_root, second_root, PPN_MERKLE_HASH_SIZE) != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Two trees of %" G_GUINT64_FORMAT
				       " entries have different root hashes"),
				     first);
			return FALSE;
		}
		return TRUE;
	}
	if (proof->len == 0)
		return ppn_merkle_consistency_fail (error, first, second);

	fn = first - 1;
	sn = second - 1;
	/* a first tree that is a complete subtree is its own first hash */
	if (ppn_merkle_is_power_of_two (first)) {
		memcpy (fr, first_root, PPN_MERKLE_HASH_SIZE);
		start = 0;
	} else {
		memcpy (fr, ppn_merkle_proof_hash (proof, 0), PPN_MERKLE_HASH_SIZE);
		start = 1;
	}
	memcpy (sr, fr, PPN_MERKLE_HASH_SIZE);
	while ((fn & 1) == 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (guint i = start; i < proof->len; i++) {
		const guint8 *c = ppn_merkle_proof_hash (proof, i);

		if (sn == 0)
			return ppn_merkle_consistency_fail (error, first, second);
		if ((fn & 1) == 1 || fn == sn) {
			ppn_merkle_node_hash (c, fr, fr);
			ppn_merkle_node_hash (c, sr, sr);
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ppn_merkle_node_hash (sr, c, sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp (fr, first_root, PPN_MERKLE_HASH_SIZE) != 0 ||
	    memcmp (sr, second_root, PPN_MERKLE_HASH_SIZE) != 0)
		return ppn_merkle_consistency_fail (error, first, second);
	return TRUE;
}
