#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-ledger-private.h"
#include "ppn-merkle.h"

/* a consistency proof of a tree of 2^64 entries has fewer hashes */
#define PPN_MERKLE_PROOF_MAX 128

/* ---- tree heads -------------------------------------------------------- */

PpnTreeHead *
ppn_tree_head_new (guint64 tree_size,
		   const guint8 root_hash[PPN_MERKLE_HASH_SIZE],
		   gint64 timestamp,
		   GBytes *signature)
{
	PpnTreeHead *head = g_new0 (PpnTreeHead, 1);

	g_return_val_if_fail (root_hash != NULL, NULL);
	head->tree_size = tree_size;
	memcpy (head->root_hash, root_hash, PPN_MERKLE_HASH_SIZE);
	head->timestamp = timestamp;
	head->signature = signature != NULL ? g_bytes_ref (signature) : NULL;
	return head;
}

PpnTreeHead *
ppn_tree_head_copy (const PpnTreeHead *head)
{
	g_return_val_if_fail (head != NULL, NULL);
	return ppn_tree_head_new (head->tree_size, head->root_hash, head->timestamp, head->signature);
}

void
ppn_tree_head_free (PpnTreeHead *head)
{
	if (head == NULL)
		return;
	g_clear_pointer (&head->signature, g_bytes_unref);
	g_free (head);
}

GBytes *
ppn_tree_head_signed_data (const PpnTreeHead *head)
{
	guint8 buf[PPN_TREE_HEAD_SIGNED_DATA_SIZE];
	guint64 size_be, timestamp_be;
	gsize off = 0;

	g_return_val_if_fail (head != NULL, NULL);
	size_be = GUINT64_TO_BE (head->tree_size);
	timestamp_be = GUINT64_TO_BE ((guint64)head->timestamp);
	memcpy (buf, PPN_TREE_HEAD_DOMAIN, sizeof PPN_TREE_HEAD_DOMAIN);
	off += sizeof PPN_TREE_HEAD_DOMAIN;
	memcpy (buf + off, &size_be, 8);
	off += 8;
	memcpy (buf + off, &timestamp_be, 8);
	off += 8;
	memcpy (buf + off, head->root_hash, PPN_MERKLE_HASH_SIZE);
	return g_bytes_new (buf, sizeof buf);
}

JsonNode *
ppn_tree_head_to_json (const PpnTreeHead *head)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();
	g_autofree gchar *root = NULL;

	g_return_val_if_fail (head != NULL && head->tree_size <= G_MAXINT64, NULL);
	root = g_base64_encode (head->root_hash, PPN_MERKLE_HASH_SIZE);
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "tree_size");
	json_builder_add_int_value (b, (gint64)head->tree_size);
	json_builder_set_member_name (b, "root_hash");
	json_builder_add_string_value (b, root);
	json_builder_set_member_name (b, "timestamp");
	json_builder_add_int_value (b, head->timestamp);
	if (head->signature != NULL) {
		gsize len = 0;
		const guint8 *sig = g_bytes_get_data (head->signature, &len);
		g_autofree gchar *sig64 = g_base64_encode (sig, len);

		json_builder_set_member_name (b, "signature");
		json_builder_add_string_value (b, sig64);
	}
	json_builder_end_object (b);
	return json_builder_get_root (b);
}

/* g_base64_decode() skips what is not base64; here a value must be the
 * one canonical encoding of exactly @expected bytes, or NULL */
static GBytes *
ppn_ledger_base64_decode (const gchar *str, gsize expected)
{
	gsize len = strlen (str);
	gsize decoded_len = 0;
	g_autofree guint8 *decoded = NULL;
	g_autofree gchar *again = NULL;

	if (len != 4 * ((expected + 2) / 3))
		return NULL;
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isalnum (str[i]) && str[i] != '+' && str[i] != '/' && str[i] != '=')
			return NULL;
	}
	decoded = g_base64_decode (str, &decoded_len);
	if (decoded_len != expected)
		return NULL;
	again = g_base64_encode (decoded, decoded_len);
	if (strcmp (again, str) != 0)
		return NULL;
	return g_bytes_new_take (g_steal_pointer (&decoded), decoded_len);
}

PpnTreeHead *
ppn_tree_head_from_json (JsonNode *node, GError **error)
{
	static const gchar *const members[] = {"tree_size", "root_hash", "timestamp", "signature", NULL};
	JsonObject *obj;
	gint64 tree_size = 0, timestamp = 0;
	const gchar *root64 = NULL, *sig64 = NULL;
	g_autoptr(GBytes) root = NULL;
	g_autoptr(GBytes) sig = NULL;

	g_return_val_if_fail (node != NULL, NULL);
	if (!JSON_NODE_HOLDS_OBJECT (node)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A tree head must be a JSON object"));
		return NULL;
	}
	obj = json_node_get_object (node);
	if (!ppn_json_check_members (obj, NULL, members, error) ||
	    !ppn_json_get_int (obj, "tree_size", TRUE, 0, G_MAXINT64, &tree_size, error) ||
	    !ppn_json_get_string (obj, "root_hash", TRUE, &root64, error) ||
	    !ppn_json_get_int (obj, "timestamp", TRUE, 0, G_MAXINT64, &timestamp, error) ||
	    !ppn_json_get_string (obj, "signature", TRUE, &sig64, error)) {
		g_prefix_error (error, _("Invalid tree head: "));
		return NULL;
	}
	root = ppn_ledger_base64_decode (root64, PPN_MERKLE_HASH_SIZE);
	if (root == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Invalid tree head: 'root_hash' must be the base64 of %d bytes"),
			     PPN_MERKLE_HASH_SIZE);
		return NULL;
	}
	sig = ppn_ledger_base64_decode (sig64, PPN_TREE_HEAD_SIGNATURE_SIZE);
	if (sig == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Invalid tree head: 'signature' must be the base64 of %d bytes (Ed25519)"),
			     PPN_TREE_HEAD_SIGNATURE_SIZE);
		return NULL;
	}
	return ppn_tree_head_new ((guint64)tree_size, g_bytes_get_data (root, NULL), timestamp, sig);
}

/* ---- keys -------------------------------------------------------------- */

static gboolean
ppn_ledger_gnutls_check (int rc, const gchar *what, GError **error)
{
	if (rc >= 0)
		return TRUE;
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, "%s: %s", what, gnutls_strerror (rc));
	return FALSE;
}

static gnutls_datum_t
ppn_ledger_datum (GBytes *bytes)
{
	gsize len = 0;
	gconstpointer data = g_bytes_get_data (bytes, &len);
	gnutls_datum_t d = {(unsigned char *)data, (unsigned int)len};

	return d;
}

static GBytes *
ppn_ledger_datum_to_bytes (PpnGnutlsDatum *d)
{
	return g_bytes_new (d->data, d->size);
}

PpnPrivkey *
ppn_ledger_privkey_import (GBytes *pem, GError **error)
{
	g_autoptr(PpnPrivkey) key = NULL;
	gnutls_datum_t d = ppn_ledger_datum (pem);
	int rc;

	if (!ppn_ledger_gnutls_check (gnutls_privkey_init (&key), _("Cannot make a private key"), error))
		return NULL;
	rc = gnutls_privkey_import_x509_raw (key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Not a PEM private key: %s"), gnutls_strerror (rc));
		return NULL;
	}
	if (gnutls_privkey_get_pk_algorithm (key, NULL) != GNUTLS_PK_EDDSA_ED25519) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The ledger key is not an Ed25519 key"));
		return NULL;
	}
	return g_steal_pointer (&key);
}

PpnPubkey *
ppn_ledger_pubkey_import (GBytes *pem, GError **error)
{
	g_autoptr(PpnPubkey) key = NULL;
	gnutls_datum_t d = ppn_ledger_datum (pem);
	int rc;

	if (!ppn_ledger_gnutls_check (gnutls_pubkey_init (&key), _("Cannot make a public key"), error))
		return NULL;
	rc = gnutls_pubkey_import (key, &d, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Not a PEM public key: %s"), gnutls_strerror (rc));
		return NULL;
	}
	if (gnutls_pubkey_get_pk_algorithm (key, NULL) != GNUTLS_PK_EDDSA_ED25519) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The ledger public key is not an Ed25519 key"));
		return NULL;
	}
	return g_steal_pointer (&key);
}

GBytes *
ppn_ledger_privkey_public_pem (gnutls_privkey_t key, GError **error)
{
	g_autoptr(PpnPubkey) pub = NULL;
	g_auto(PpnGnutlsDatum) pem = {NULL, 0};

	if (!ppn_ledger_gnutls_check (gnutls_pubkey_init (&pub), _("Cannot make a public key"), error) ||
	    !ppn_ledger_gnutls_check (gnutls_pubkey_import_privkey (pub, key, 0, 0),
				      _("Cannot take the public key of the ledger key"), error) ||
	    !ppn_ledger_gnutls_check (gnutls_pubkey_export2 (pub, GNUTLS_X509_FMT_PEM, &pem),
				      _("Cannot export the ledger public key"), error))
		return NULL;
	return ppn_ledger_datum_to_bytes (&pem);
}

gboolean
ppn_ledger_pubkey_equal (gnutls_pubkey_t a, gnutls_pubkey_t b)
{
	g_auto(PpnGnutlsDatum) da = {NULL, 0};
	g_auto(PpnGnutlsDatum) db = {NULL, 0};

	return gnutls_pubkey_export2 (a, GNUTLS_X509_FMT_DER, &da) >= 0 &&
	       gnutls_pubkey_export2 (b, GNUTLS_X509_FMT_DER, &db) >= 0 && da.size == db.size &&
	       memcmp (da.data, db.data, da.size) == 0;
}

gboolean
ppn_ledger_generate_key (GBytes **private_key_pem, GBytes **public_key_pem, GError **error)
{
	g_autoptr(PpnX509Privkey) x509 = NULL;
	g_autoptr(PpnPrivkey) key = NULL;
	g_auto(PpnGnutlsDatum) pem = {NULL, 0};
	g_autoptr(GBytes) pub = NULL;

	g_return_val_if_fail (private_key_pem != NULL && public_key_pem != NULL, FALSE);
	if (!ppn_ledger_gnutls_check (gnutls_x509_privkey_init (&x509), _("Cannot make a private key"),
				      error) ||
	    !ppn_ledger_gnutls_check (
		    gnutls_x509_privkey_generate (x509, GNUTLS_PK_EDDSA_ED25519,
						  GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_ED25519), 0),
		    _("Cannot generate an Ed25519 key"), error) ||
	    !ppn_ledger_gnutls_check (gnutls_x509_privkey_export2_pkcs8 (x509, GNUTLS_X509_FMT_PEM, NULL,
									 GNUTLS_PKCS_PLAIN, &pem),
				      _("Cannot export the ledger key"), error) ||
	    !ppn_ledger_gnutls_check (gnutls_privkey_init (&key), _("Cannot make a private key"), error) ||
	    !ppn_ledger_gnutls_check (gnutls_privkey_import_x509 (key, x509, 0),
				      _("Cannot load the ledger key"), error))
		return FALSE;
	pub = ppn_ledger_privkey_public_pem (key, error);
	if (pub == NULL)
		return FALSE;
	*private_key_pem = ppn_ledger_datum_to_bytes (&pem);
	*public_key_pem = g_steal_pointer (&pub);
	return TRUE;
}

/* ---- signatures -------------------------------------------------------- */

gboolean
ppn_tree_head_sign_with (PpnTreeHead *head, gnutls_privkey_t key, GError **error)
{
	g_autoptr(GBytes) data = ppn_tree_head_signed_data (head);
	gnutls_datum_t d = ppn_ledger_datum (data);
	g_auto(PpnGnutlsDatum) sig = {NULL, 0};

	if (!ppn_ledger_gnutls_check (gnutls_privkey_sign_data2 (key, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig),
				      _("Cannot sign the tree head"), error))
		return FALSE;
	g_clear_pointer (&head->signature, g_bytes_unref);
	head->signature = ppn_ledger_datum_to_bytes (&sig);
	return TRUE;
}

gboolean
ppn_tree_head_sign (PpnTreeHead *head, GBytes *private_key_pem, GError **error)
{
	g_autoptr(PpnPrivkey) key = NULL;

	g_return_val_if_fail (head != NULL && private_key_pem != NULL, FALSE);
	key = ppn_ledger_privkey_import (private_key_pem, error);
	return key != NULL && ppn_tree_head_sign_with (head, key, error);
}

gboolean
ppn_tree_head_verify_with (const PpnTreeHead *head, gnutls_pubkey_t key, GError **error)
{
	g_autoptr(GBytes) data = NULL;
	gnutls_datum_t d, sig;
	int rc;

	if (head->signature == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The tree head of size %" G_GUINT64_FORMAT " is not signed"), head->tree_size);
		return FALSE;
	}
	data = ppn_tree_head_signed_data (head);
	d = ppn_ledger_datum (data);
	sig = ppn_ledger_datum (head->signature);
	rc = gnutls_pubkey_verify_data2 (key, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig);
	if (rc < 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The signature of the tree head of size %" G_GUINT64_FORMAT
			       " does not verify with the ledger public key (%s)"),
			     head->tree_size, gnutls_strerror (rc));
		return FALSE;
	}
	return TRUE;
}

gboolean
ppn_tree_head_verify (const PpnTreeHead *head, GBytes *public_key_pem, GError **error)
{
	g_autoptr(PpnPubkey) key = NULL;

	g_return_val_if_fail (head != NULL && public_key_pem != NULL, FALSE);
	key = ppn_ledger_pubkey_import (public_key_pem, error);
	return key != NULL && ppn_tree_head_verify_with (head, key, error);
}

/* ---- proofs ------------------------------------------------------------ */

JsonNode *
ppn_merkle_proof_to_json (GPtrArray *proof)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();

	g_return_val_if_fail (proof != NULL, NULL);
	json_builder_begin_array (b);
	for (guint i = 0; i < proof->len; i++) {
		gsize len = 0;
		const guint8 *h = g_bytes_get_data (g_ptr_array_index (proof, i), &len);
		g_autofree gchar *h64 = g_base64_encode (h, len);

		json_builder_add_string_value (b, h64);
	}
	json_builder_end_array (b);
	return json_builder_get_root (b);
}

GPtrArray *
ppn_merkle_proof_from_json (JsonNode *node, GError **error)
{
	g_autoptr(GPtrArray) proof = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	JsonArray *array;

	g_return_val_if_fail (node != NULL, NULL);
	if (!JSON_NODE_HOLDS_ARRAY (node)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A proof must be a JSON array of base64 hashes"));
		return NULL;
	}
	array = json_node_get_array (node);
	if (json_array_get_length (array) > PPN_MERKLE_PROOF_MAX) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("A proof has at most %d hashes, this one %u"), PPN_MERKLE_PROOF_MAX,
			     json_array_get_length (array));
		return NULL;
	}
	for (guint i = 0; i < json_array_get_length (array); i++) {
		JsonNode *element = json_array_get_element (array, i);
		GBytes *hash = NULL;

		if (JSON_NODE_HOLDS_VALUE (element) && json_node_get_value_type (element) == G_TYPE_STRING)
			hash = ppn_ledger_base64_decode (json_node_get_string (element),
							 PPN_MERKLE_HASH_SIZE);
		if (hash == NULL) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Proof element %u must be the base64 of a %d-byte hash"), i,
				     PPN_MERKLE_HASH_SIZE);
			return NULL;
		}
		g_ptr_array_add (proof, hash);
	}
	return g_steal_pointer (&proof);
}

gboolean
ppn_ledger_verify_inclusion (const PpnTreeHead *head,
			     GBytes *public_key_pem,
			     GBytes *entry,
			     guint64 index,
			     GPtrArray *proof,
			     GError **error)
{
	guint8 leaf[PPN_MERKLE_HASH_SIZE];
	gsize len = 0;
	const guint8 *data;

	g_return_val_if_fail (head != NULL && public_key_pem != NULL, FALSE);
	g_return_val_if_fail (entry != NULL && proof != NULL, FALSE);
	/* a proof against a head nobody signed proves nothing */
	if (!ppn_tree_head_verify (head, public_key_pem, error))
		return FALSE;
	data = g_bytes_get_data (entry, &len);
	ppn_merkle_leaf_hash (data, len, leaf);
	return ppn_merkle_verify_inclusion (leaf, index, head->tree_size, proof, head->root_hash, error);
}

gboolean
ppn_ledger_verify_consistency (const PpnTreeHead *old_head,
			       const PpnTreeHead *new_head,
			       GBytes *public_key_pem,
			       GPtrArray *proof,
			       GError **error)
{
	g_autoptr(PpnPubkey) key = NULL;

	g_return_val_if_fail (old_head != NULL && new_head != NULL && public_key_pem != NULL && proof != NULL,
			      FALSE);
	key = ppn_ledger_pubkey_import (public_key_pem, error);
	if (key == NULL || !ppn_tree_head_verify_with (old_head, key, error) ||
	    !ppn_tree_head_verify_with (new_head, key, error))
		return FALSE;
	return ppn_merkle_verify_consistency (old_head->tree_size, new_head->tree_size, old_head->root_hash,
					      new_head->root_hash, proof, error);
}

/* ---- the interface ----------------------------------------------------- */

G_DEFINE_INTERFACE (PpnLedger, ppn_ledger, G_TYPE_OBJECT)

static void
ppn_ledger_default_init (PpnLedgerInterface *iface)
{
}

gboolean
ppn_ledger_append (PpnLedger *self, GPtrArray *entries, guint64 *first_index, GError **error)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), FALSE);
	g_return_val_if_fail (entries != NULL, FALSE);
	g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->append != NULL, FALSE);
	return iface->append (self, entries, first_index, error);
}

PpnTreeHead *
ppn_ledger_get_tree_head (PpnLedger *self, GError **error)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), NULL);
	g_return_val_if_fail (error == NULL || *error == NULL, NULL);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->get_tree_head != NULL, NULL);
	return iface->get_tree_head (self, error);
}

GBytes *
ppn_ledger_get_entry (PpnLedger *self, guint64 index, GError **error)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), NULL);
	g_return_val_if_fail (error == NULL || *error == NULL, NULL);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->get_entry != NULL, NULL);
	return iface->get_entry (self, index, error);
}

GPtrArray *
ppn_ledger_prove_inclusion (PpnLedger *self, guint64 index, guint64 tree_size, GError **error)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), NULL);
	g_return_val_if_fail (error == NULL || *error == NULL, NULL);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->prove_inclusion != NULL, NULL);
	return iface->prove_inclusion (self, index, tree_size, error);
}

GPtrArray *
ppn_ledger_prove_consistency (PpnLedger *self, guint64 first, guint64 second, GError **error)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), NULL);
	g_return_val_if_fail (error == NULL || *error == NULL, NULL);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->prove_consistency != NULL, NULL);
	return iface->prove_consistency (self, first, second, error);
}

GBytes *
ppn_ledger_get_public_key (PpnLedger *self)
{
	PpnLedgerInterface *iface;

	g_return_val_if_fail (PPN_IS_LEDGER (self), NULL);
	iface = PPN_LEDGER_GET_IFACE (self);
	g_return_val_if_fail (iface->get_public_key != NULL, NULL);
	return iface->get_public_key (self);
}
