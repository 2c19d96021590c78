#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* the role a fleet-CA certificate carries, in its subject's OU; the CN is
 * the holder's name (a node id for agents) */
typedef enum {
	PPN_TLS_ROLE_UNKNOWN,
	PPN_TLS_ROLE_FLEET,
	PPN_TLS_ROLE_AGENT,
	PPN_TLS_ROLE_OPERATOR,
} PpnTlsRole;

const gchar *ppn_tls_role_to_string (PpnTlsRole role);
PpnTlsRole ppn_tls_role_from_string (const gchar *str);

gboolean ppn_tls_ca_create (const gchar *dir, const gchar *name, guint days, GError **error);
gboolean ppn_tls_issue (const gchar *ca_dir,
			PpnTlsRole role,
			const gchar *name,
			const gchar *const *sans,
			guint days,
			const gchar *cert_path,
			const gchar *key_path,
			GError **error);

GTlsCertificate *ppn_tls_load_certificate (const gchar *cert_path, const gchar *key_path, GError **error);
GTlsDatabase *ppn_tls_load_ca (const gchar *ca_path, GError **error);
gboolean ppn_tls_certificate_identity (GTlsCertificate *cert,
				       PpnTlsRole *role,
				       gchar **name,
				       GError **error);

G_END_DECLS
