#pragma once

#include <glib.h>

#include "ppn-ledger.h"

G_BEGIN_DECLS

/* RFC 6962 / RFC 9162 Merkle tree hashing, SHA-256 through gnutls:
 * leaf = H(0x00 || data), node = H(0x01 || left || right), the empty
 * tree hashes to H(""). */
void ppn_merkle_leaf_hash (const guint8 *data, gsize len, guint8 out[PPN_MERKLE_HASH_SIZE]);
void ppn_merkle_node_hash (const guint8 left[PPN_MERKLE_HASH_SIZE],
			   const guint8 right[PPN_MERKLE_HASH_SIZE],
			   guint8 out[PPN_MERKLE_HASH_SIZE]);

/* plain SHA-256, as the empty tree and the ledger file's checksums use it */
void ppn_merkle_sha256 (const void *data, gsize len, guint8 out[PPN_MERKLE_HASH_SIZE]);

/* An in-memory tree over leaf hashes, appended to in order, that answers
 * roots and proofs for any tree size up to its own in O(log n) hashes. */
typedef struct _PpnMerkleTree PpnMerkleTree;

PpnMerkleTree *ppn_merkle_tree_new (void);
void ppn_merkle_tree_free (PpnMerkleTree *tree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnMerkleTree, ppn_merkle_tree_free)
void ppn_merkle_tree_append (PpnMerkleTree *tree, const guint8 leaf_hash[PPN_MERKLE_HASH_SIZE]);
/* forgets the leaves from @size on (an append that failed) */
void ppn_merkle_tree_truncate (PpnMerkleTree *tree, guint64 size);
guint64 ppn_merkle_tree_size (PpnMerkleTree *tree);
/* the leaf hash of entry @index; FALSE when the tree is smaller */
gboolean ppn_merkle_tree_get_leaf (PpnMerkleTree *tree, guint64 index, guint8 out[PPN_MERKLE_HASH_SIZE]);
gboolean ppn_merkle_tree_root (PpnMerkleTree *tree, guint64 tree_size, guint8 out[PPN_MERKLE_HASH_SIZE], GError **error);
GPtrArray *ppn_merkle_tree_prove_inclusion (PpnMerkleTree *tree, guint64 index, guint64 tree_size, GError **error);
GPtrArray *ppn_merkle_tree_prove_consistency (PpnMerkleTree *tree, guint64 first, guint64 second, GError **error);

/* RFC 9162 2.1.3.2 and 2.1.4.2; FALSE with an error when the proof does
 * not prove it */
gboolean ppn_merkle_verify_inclusion (const guint8 leaf_hash[PPN_MERKLE_HASH_SIZE],
				      guint64 index,
				      guint64 tree_size,
				      GPtrArray *proof,
				      const guint8 root[PPN_MERKLE_HASH_SIZE],
				      GError **error);
gboolean ppn_merkle_verify_consistency (guint64 first,
					guint64 second,
					const guint8 first_root[PPN_MERKLE_HASH_SIZE],
					const guint8 second_root[PPN_MERKLE_HASH_SIZE],
					GPtrArray *proof,
					GError **error);

G_END_DECLS
