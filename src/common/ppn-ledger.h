#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The WORM ledger: an append-only sequence of opaque entries that are the
 * leaves of an RFC 6962 / RFC 9162 Merkle tree (SHA-256), with signed tree
 * heads (Ed25519). This is the small interface the audit trail writes
 * through; PpnFileLedger (ppn-file-ledger.h) is the embedded
 * implementation, and an external WORM store could implement it instead.
 *
 * Every method is thread-safe: the audit writer appends from its own
 * thread while the main loop reads heads and proofs. */

#define PPN_MERKLE_HASH_SIZE 32

/* A signed tree head: the tree of the first @tree_size entries had root
 * @root_hash at @timestamp (ms since the epoch), signed by the ledger key
 * over ppn_tree_head_signed_data(). */
typedef struct {
	guint64 tree_size;
	guint8 root_hash[PPN_MERKLE_HASH_SIZE];
	gint64 timestamp; /* ms since the epoch, UTC */
	GBytes *signature;
} PpnTreeHead;

PpnTreeHead *ppn_tree_head_copy (const PpnTreeHead *head);
void ppn_tree_head_free (PpnTreeHead *head);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnTreeHead, ppn_tree_head_free)

/* the exact bytes the signature covers */
GBytes *ppn_tree_head_signed_data (const PpnTreeHead *head);
/* {"tree_size": N, "root_hash": "<base64>", "timestamp": ms, "signature": "<base64>"} */
JsonNode *ppn_tree_head_to_json (const PpnTreeHead *head);
PpnTreeHead *ppn_tree_head_from_json (JsonNode *node, GError **error);
/* checks the signature against a PEM public key; FALSE with an error
 * naming what is wrong otherwise. A proof against an unverified head
 * proves nothing, so callers verify the head first. */
gboolean ppn_tree_head_verify (const PpnTreeHead *head, GBytes *public_key_pem, GError **error);

/* an Ed25519 signature */
#define PPN_TREE_HEAD_SIGNATURE_SIZE 64
/* ppn_tree_head_signed_data() starts with this tag and its NUL */
#define PPN_TREE_HEAD_DOMAIN "ppn-ledger-tree-head-v1"
#define PPN_TREE_HEAD_SIGNED_DATA_SIZE (sizeof PPN_TREE_HEAD_DOMAIN + 8 + 8 + PPN_MERKLE_HASH_SIZE)

/* @signature may be NULL: a head still to be signed */
PpnTreeHead *ppn_tree_head_new (guint64 tree_size,
				const guint8 root_hash[PPN_MERKLE_HASH_SIZE],
				gint64 timestamp,
				GBytes *signature);
/* signs @head with a PEM Ed25519 private key, replacing any signature */
gboolean ppn_tree_head_sign (PpnTreeHead *head, GBytes *private_key_pem, GError **error);
/* a new Ed25519 key pair, both PEM (PKCS #8 and SubjectPublicKeyInfo) */
gboolean ppn_ledger_generate_key (GBytes **private_key_pem, GBytes **public_key_pem, GError **error);

/* what a tenant or an auditor checks offline: the head's signature
 * first, then the proof against that head. @entry is the entry's bytes
 * (its leaf hash is computed here). */
gboolean ppn_ledger_verify_inclusion (const PpnTreeHead *head,
				      GBytes *public_key_pem,
				      GBytes *entry,
				      guint64 index,
				      GPtrArray *proof,
				      GError **error);
/* both heads' signatures, then that @new_head's tree extends @old_head's */
gboolean ppn_ledger_verify_consistency (const PpnTreeHead *old_head,
					const PpnTreeHead *new_head,
					GBytes *public_key_pem,
					GPtrArray *proof,
					GError **error);

/* proofs are arrays of GBytes of PPN_MERKLE_HASH_SIZE bytes each;
 * to/from JSON as an array of base64 strings */
JsonNode *ppn_merkle_proof_to_json (GPtrArray *proof);
GPtrArray *ppn_merkle_proof_from_json (JsonNode *node, GError **error);

#define PPN_TYPE_LEDGER (ppn_ledger_get_type ())
G_DECLARE_INTERFACE (PpnLedger, ppn_ledger, PPN, LEDGER, GObject)

struct _PpnLedgerInterface {
	GTypeInterface parent_iface;

	/* appends @entries (GBytes each) in order, durably (on disk before it
	 * returns), then signs a tree head covering them; @first_index is the
	 * index of the first one. All or nothing: on failure none of them
	 * counts and the ledger stays as it was. */
	gboolean (*append) (PpnLedger *self, GPtrArray *entries, guint64 *first_index, GError **error);
	/* the newest signed tree head; NULL with an error on an empty ledger */
	PpnTreeHead *(*get_tree_head) (PpnLedger *self, GError **error);
	GBytes *(*get_entry) (PpnLedger *self, guint64 index, GError **error);
	/* audit path of entry @index in the tree of the first @tree_size entries */
	GPtrArray *(*prove_inclusion) (PpnLedger *self, guint64 index, guint64 tree_size, GError **error);
	/* RFC 9162 2.1.4 consistency proof between tree sizes @first and @second */
	GPtrArray *(*prove_consistency) (PpnLedger *self, guint64 first, guint64 second, GError **error);
	/* the PEM public key heads are signed with (a new reference) */
	GBytes *(*get_public_key) (PpnLedger *self);
};

gboolean ppn_ledger_append (PpnLedger *self, GPtrArray *entries, guint64 *first_index, GError **error);
PpnTreeHead *ppn_ledger_get_tree_head (PpnLedger *self, GError **error);
GBytes *ppn_ledger_get_entry (PpnLedger *self, guint64 index, GError **error);
GPtrArray *ppn_ledger_prove_inclusion (PpnLedger *self, guint64 index, guint64 tree_size, GError **error);
GPtrArray *ppn_ledger_prove_consistency (PpnLedger *self, guint64 first, guint64 second, GError **error);
GBytes *ppn_ledger_get_public_key (PpnLedger *self);

G_END_DECLS
