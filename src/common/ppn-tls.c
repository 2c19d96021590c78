#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gio/gio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <errno.h>
#include <string.h>

#include "ppn-cleanup.h"
#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-tls.h"

#define PPN_TLS_ORG "ppn"

static const gchar *const ppn_tls_role_names[] = {
	[PPN_TLS_ROLE_UNKNOWN] = "unknown",
	[PPN_TLS_ROLE_FLEET] = "fleet",
	[PPN_TLS_ROLE_AGENT] = "agent",
	[PPN_TLS_ROLE_OPERATOR] = "operator",
};

const gchar *
ppn_tls_role_to_string (PpnTlsRole role)
{
	if ((guint)role > PPN_TLS_ROLE_OPERATOR)
		return "unknown";
	return ppn_tls_role_names[role];
}

PpnTlsRole
ppn_tls_role_from_string (const gchar *str)
{
	for (guint i = PPN_TLS_ROLE_FLEET; i <= PPN_TLS_ROLE_OPERATOR; i++) {
		if (g_strcmp0 (str, ppn_tls_role_names[i]) == 0)
			return (PpnTlsRole)i;
	}
	return PPN_TLS_ROLE_UNKNOWN;
}

static gboolean
ppn_tls_check (int rc, const gchar *what, GError **error)
{
	if (rc >= 0)
		return TRUE;
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, "%s: %s", what, gnutls_strerror (rc));
	return FALSE;
}

static gboolean
ppn_tls_write (const gchar *path, const gnutls_datum_t *d, gint mode, GError **error)
{
	if (!g_file_set_contents_full (path, (const gchar *)d->data, d->size,
				       G_FILE_SET_CONTENTS_CONSISTENT, mode, error)) {
		g_prefix_error (error, _("Cannot write %s: "), path);
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppn_tls_read (const gchar *path, gchar **data, gsize *len, GError **error)
{
	if (!g_file_get_contents (path, data, len, error)) {
		g_prefix_error (error, _("Cannot read %s: "), path);
		return FALSE;
	}
	return TRUE;
}

static PpnX509Privkey *
ppn_tls_generate_key (GError **error)
{
	g_autoptr(PpnX509Privkey) key = NULL;

	if (!ppn_tls_check (gnutls_x509_privkey_init (&key), "privkey_init", error) ||
	    !ppn_tls_check (gnutls_x509_privkey_generate (key, GNUTLS_PK_ECDSA,
							  GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0),
			    "generating a key", error))
		return NULL;
	return g_steal_pointer (&key);
}

static gboolean
ppn_tls_set_common (gnutls_x509_crt_t crt,
		    gnutls_x509_privkey_t key,
		    const gchar *cn,
		    const gchar *ou,
		    guint days,
		    GError **error)
{
	guint8 serial[16];
	time_t now = time (NULL);

	if (!ppn_tls_check (gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial), "rnd", error))
		return FALSE;
	serial[0] &= 0x7f; /* positive */
	return ppn_tls_check (gnutls_x509_crt_set_version (crt, 3), "set_version", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_serial (crt, serial, sizeof serial), "set_serial", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_activation_time (crt, now - 300), "activation", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_expiration_time (crt, now + (time_t)days * 86400),
			      "expiration", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
							     PPN_TLS_ORG, strlen (PPN_TLS_ORG)),
			      "set O", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, 0,
							     ou, strlen (ou)),
			      "set OU", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen (cn)),
			      "set CN", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_key (crt, key), "set_key", error);
}

static gboolean
ppn_tls_set_subject_key_id (gnutls_x509_crt_t crt, GError **error)
{
	guint8 id[64];
	size_t len = sizeof id;

	return ppn_tls_check (gnutls_x509_crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA1, id, &len), "key_id", error) &&
	       ppn_tls_check (gnutls_x509_crt_set_subject_key_id (crt, id, len), "subject_key_id", error);
}

gboolean
ppn_tls_ca_create (const gchar *dir, const gchar *name, guint days, GError **error)
{
	g_autoptr(PpnX509Privkey) key = NULL;
	g_autoptr(PpnX509Crt) crt = NULL;
	g_auto(PpnGnutlsDatum) cert_pem = {NULL, 0};
	g_auto(PpnGnutlsDatum) key_pem = {NULL, 0};
	g_autofree gchar *cert_path = g_build_filename (dir, "ca.pem", NULL);
	g_autofree gchar *key_path = g_build_filename (dir, "ca-key.pem", NULL);

	g_return_val_if_fail (dir != NULL && name != NULL, FALSE);
	if (g_file_test (key_path, G_FILE_TEST_EXISTS)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT,
			     _("%s already exists; refusing to replace a CA key"), key_path);
		return FALSE;
	}
	if (g_mkdir_with_parents (dir, 0700) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot create %s: %s"),
			     dir, g_strerror (errno));
		return FALSE;
	}
	key = ppn_tls_generate_key (error);
	if (key == NULL)
		return FALSE;
	if (!ppn_tls_check (gnutls_x509_crt_init (&crt), "crt_init", error) ||
	    !ppn_tls_set_common (crt, key, name, "ca", days, error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_basic_constraints (crt, 1, 0), "basic_constraints", error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
			    "key_usage", error) ||
	    !ppn_tls_set_subject_key_id (crt, error) ||
	    !ppn_tls_check (gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0), "signing the CA", error) ||
	    !ppn_tls_check (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &cert_pem), "export", error) ||
	    !ppn_tls_check (gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM, &key_pem), "export", error))
		return FALSE;
	return ppn_tls_write (key_path, &key_pem, 0600, error) &&
	       ppn_tls_write (cert_path, &cert_pem, 0644, error);
}

static gboolean
ppn_tls_add_san (gnutls_x509_crt_t crt, const gchar *san, GError **error)
{
	g_autoptr(GInetAddress) addr = g_inet_address_new_from_string (san);

	if (addr != NULL) {
		return ppn_tls_check (gnutls_x509_crt_set_subject_alt_name (crt, GNUTLS_SAN_IPADDRESS,
									    g_inet_address_to_bytes (addr),
									    g_inet_address_get_native_size (addr),
									    GNUTLS_FSAN_APPEND),
				      "subject_alt_name", error);
	}
	return ppn_tls_check (gnutls_x509_crt_set_subject_alt_name (crt, GNUTLS_SAN_DNSNAME, san, strlen (san),
								    GNUTLS_FSAN_APPEND),
			      "subject_alt_name", error);
}

gboolean
ppn_tls_issue (const gchar *ca_dir,
	       PpnTlsRole role,
	       const gchar *name,
	       const gchar *const *sans,
	       guint days,
	       const gchar *cert_path,
	       const gchar *key_path,
	       GError **error)
{
	g_autofree gchar *ca_cert_path = g_build_filename (ca_dir, "ca.pem", NULL);
	g_autofree gchar *ca_key_path = g_build_filename (ca_dir, "ca-key.pem", NULL);
	g_autofree gchar *ca_cert_data = NULL;
	g_autofree gchar *ca_key_data = NULL;
	gsize ca_cert_len = 0, ca_key_len = 0;
	gnutls_datum_t d;
	g_autoptr(PpnX509Crt) ca_crt = NULL;
	g_autoptr(PpnX509Privkey) ca_key = NULL;
	g_autoptr(PpnX509Privkey) key = NULL;
	g_autoptr(PpnX509Crt) crt = NULL;
	g_auto(PpnGnutlsDatum) cert_pem = {NULL, 0};
	g_auto(PpnGnutlsDatum) key_pem = {NULL, 0};
	guint8 ca_id[64];
	size_t ca_id_len = sizeof ca_id;
	guint usage = GNUTLS_KEY_DIGITAL_SIGNATURE;

	g_return_val_if_fail (role != PPN_TLS_ROLE_UNKNOWN, FALSE);
	g_return_val_if_fail (name != NULL && name[0] != '\0', FALSE);

	if (!ppn_tls_read (ca_cert_path, &ca_cert_data, &ca_cert_len, error) ||
	    !ppn_tls_read (ca_key_path, &ca_key_data, &ca_key_len, error))
		return FALSE;
	d.data = (guint8 *)ca_cert_data;
	d.size = (guint)ca_cert_len;
	if (!ppn_tls_check (gnutls_x509_crt_init (&ca_crt), "crt_init", error) ||
	    !ppn_tls_check (gnutls_x509_crt_import (ca_crt, &d, GNUTLS_X509_FMT_PEM), ca_cert_path, error))
		return FALSE;
	d.data = (guint8 *)ca_key_data;
	d.size = (guint)ca_key_len;
	if (!ppn_tls_check (gnutls_x509_privkey_init (&ca_key), "privkey_init", error) ||
	    !ppn_tls_check (gnutls_x509_privkey_import (ca_key, &d, GNUTLS_X509_FMT_PEM), ca_key_path, error))
		return FALSE;

	key = ppn_tls_generate_key (error);
	if (key == NULL)
		return FALSE;
	if (!ppn_tls_check (gnutls_x509_crt_init (&crt), "crt_init", error) ||
	    !ppn_tls_set_common (crt, key, name, ppn_tls_role_to_string (role), days, error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_basic_constraints (crt, 0, -1), "basic_constraints", error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_key_usage (crt, usage), "key_usage", error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), "kp", error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_SERVER, 0), "kp", error) ||
	    !ppn_tls_set_subject_key_id (crt, error) ||
	    !ppn_tls_check (gnutls_x509_crt_get_subject_key_id (ca_crt, ca_id, &ca_id_len, NULL), "ca key id", error) ||
	    !ppn_tls_check (gnutls_x509_crt_set_authority_key_id (crt, ca_id, ca_id_len), "authority_key_id", error))
		return FALSE;
	for (guint i = 0; sans != NULL && sans[i] != NULL; i++) {
		if (!ppn_tls_add_san (crt, sans[i], error))
			return FALSE;
	}
	if (!ppn_tls_check (gnutls_x509_crt_sign2 (crt, ca_crt, ca_key, GNUTLS_DIG_SHA256, 0), "signing", error) ||
	    !ppn_tls_check (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &cert_pem), "export", error) ||
	    !ppn_tls_check (gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM, &key_pem), "export", error))
		return FALSE;
	return ppn_tls_write (key_path, &key_pem, 0600, error) &&
	       ppn_tls_write (cert_path, &cert_pem, 0644, error);
}

GTlsCertificate *
ppn_tls_load_certificate (const gchar *cert_path, const gchar *key_path, GError **error)
{
	GTlsCertificate *cert = g_tls_certificate_new_from_files (cert_path, key_path, error);

	if (cert == NULL)
		g_prefix_error (error, _("Cannot load certificate %s with key %s: "), cert_path, key_path);
	return cert;
}

GTlsDatabase *
ppn_tls_load_ca (const gchar *ca_path, GError **error)
{
	GTlsDatabase *db = g_tls_file_database_new (ca_path, error);

	if (db == NULL)
		g_prefix_error (error, _("Cannot load CA file %s: "), ca_path);
	return db;
}

static gchar *
ppn_tls_get_dn_part (gnutls_x509_crt_t crt, const gchar *oid)
{
	gchar buf[256];
	size_t len = sizeof buf - 1;

	if (gnutls_x509_crt_get_dn_by_oid (crt, oid, 0, 0, buf, &len) < 0)
		return NULL;
	buf[len] = '\0';
	return g_strdup (buf);
}

/* the caller has verified the chain (the TLS handshake did); this only
 * reads what the certificate says about its holder */
gboolean
ppn_tls_certificate_identity (GTlsCertificate *cert, PpnTlsRole *role, gchar **name, GError **error)
{
	g_autoptr(GByteArray) der = NULL;
	g_autoptr(PpnX509Crt) crt = NULL;
	g_autofree gchar *ou = NULL;
	g_autofree gchar *cn = NULL;
	gnutls_datum_t d;

	g_return_val_if_fail (G_IS_TLS_CERTIFICATE (cert), FALSE);
	g_object_get (cert, "certificate", &der, NULL);
	if (der == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAUTHORIZED, _("The peer certificate is empty"));
		return FALSE;
	}
	d.data = der->data;
	d.size = der->len;
	if (gnutls_x509_crt_init (&crt) < 0 || gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAUTHORIZED,
				     _("The peer certificate cannot be parsed"));
		return FALSE;
	}
	ou = ppn_tls_get_dn_part (crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME);
	cn = ppn_tls_get_dn_part (crt, GNUTLS_OID_X520_COMMON_NAME);
	if (ou == NULL || cn == NULL || cn[0] == '\0' || ppn_tls_role_from_string (ou) == PPN_TLS_ROLE_UNKNOWN) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAUTHORIZED,
				     _("The peer certificate carries no ppn role and name"));
		return FALSE;
	}
	*role = ppn_tls_role_from_string (ou);
	*name = g_steal_pointer (&cn);
	return TRUE;
}
