#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <string.h>

#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-tls.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

#define PPNCTL_CA_DAYS_DEFAULT 3650
#define PPNCTL_CERT_DAYS_DEFAULT 825
#define PPNCTL_DAYS_MAX 36500

static gboolean
ppnctl_pki_check_days (gint days, GError **error)
{
	if (days < 1 || days > PPNCTL_DAYS_MAX) {
		ppnctl_usage_error (error, _("--days must be from 1 to %d"), PPNCTL_DAYS_MAX);
		return FALSE;
	}
	return TRUE;
}

/* an IP address, or a DNS name (letters, digits, '-' and '.') */
static gboolean
ppnctl_pki_check_san (const gchar *san, GError **error)
{
	g_autoptr(GInetAddress) addr = g_inet_address_new_from_string (san);
	gsize len = strlen (san);
	gboolean ok = len > 0 && len <= 253 && g_ascii_isalnum (san[0]);

	if (addr != NULL)
		return TRUE;
	for (gsize i = 0; ok && i < len; i++)
		ok = g_ascii_isalnum (san[i]) || san[i] == '-' || san[i] == '.';
	if (!ok) {
		ppnctl_usage_error (error, _("--san '%s' is neither a host name nor an IP address"), san);
		return FALSE;
	}
	return TRUE;
}

static void
ppnctl_pki_print_files (const gchar *first_key, ...)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();
	g_autoptr(JsonNode) root = NULL;
	va_list args;

	json_builder_begin_object (b);
	va_start (args, first_key);
	for (const gchar *key = first_key; key != NULL; key = va_arg (args, const gchar *)) {
		json_builder_set_member_name (b, key);
		json_builder_add_string_value (b, va_arg (args, const gchar *));
	}
	va_end (args);
	json_builder_end_object (b);
	root = json_builder_get_root (b);
	ppnctl_print_json (root);
}

static gboolean
ppnctl_ca_init (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *dir = NULL;
	g_autofree gchar *name = NULL;
	gint days = PPNCTL_CA_DAYS_DEFAULT;
	const GOptionEntry entries[] = {
		{"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, N_("Write ca.pem and ca-key.pem into DIR (required)"),
		 N_("DIR")},
		{"name", 0, 0, G_OPTION_ARG_STRING, &name, N_("The CA's common name (default ppn-ca)"), N_("NAME")},
		{"days", 0, 0, G_OPTION_ARG_INT, &days, N_("Validity in days (default 3650)"), N_("N")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		NULL, _("Create the fleet CA. An existing CA key is never replaced."), entries);
	g_autofree gchar *cert_path = NULL;
	g_autofree gchar *key_path = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl ca init' takes no arguments"));
		return FALSE;
	}
	if (dir == NULL || dir[0] == '\0') {
		ppnctl_usage_error (error, _("--dir DIR is required"));
		return FALSE;
	}
	if (name == NULL)
		name = g_strdup ("ppn-ca");
	if (!ppn_name_validate ("--name", name, error)) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}
	if (!ppnctl_pki_check_days (days, error) || !ppn_tls_ca_create (dir, name, (guint)days, error))
		return FALSE;
	cert_path = g_build_filename (dir, "ca.pem", NULL);
	key_path = g_build_filename (dir, "ca-key.pem", NULL);
	if (ppnctl_output_json ()) {
		ppnctl_pki_print_files ("ca_cert", cert_path, "ca_key", key_path, NULL);
	} else {
		g_print (_("CA certificate: %s\n"), cert_path);
		g_print (_("CA key:         %s (mode 0600; keep it off the nodes)\n"), key_path);
	}
	return TRUE;
}

static const PpnctlCommand ca_commands[] = {
	{"init", ppnctl_ca_init, N_("Create the fleet CA")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_ca (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("ca", ca_commands, argc, argv, cancellable, error);
}

static gboolean
ppnctl_cert_issue (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *ca_dir = NULL;
	g_autofree gchar *role_str = NULL;
	g_autofree gchar *name = NULL;
	g_auto(GStrv) sans = NULL;
	g_autofree gchar *cert_path = NULL;
	g_autofree gchar *key_path = NULL;
	gint days = PPNCTL_CERT_DAYS_DEFAULT;
	const GOptionEntry entries[] = {
		{"ca-dir", 0, 0, G_OPTION_ARG_FILENAME, &ca_dir, N_("The CA made by 'ppnctl ca init' (required)"),
		 N_("DIR")},
		{"role", 0, 0, G_OPTION_ARG_STRING, &role_str, N_("fleet, agent or operator (required)"),
		 N_("ROLE")},
		{"name", 0, 0, G_OPTION_ARG_STRING, &name, N_("The holder's name, a node id for agents (required)"),
		 N_("NAME")},
		{"san", 0, 0, G_OPTION_ARG_STRING_ARRAY, &sans,
		 N_("Host name or IP address the certificate is valid for (repeatable; default 127.0.0.1 and "
		    "localhost)"),
		 N_("HOST_OR_IP")},
		{"cert", 0, 0, G_OPTION_ARG_FILENAME, &cert_path, N_("Write the certificate to FILE (required)"),
		 N_("FILE")},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key_path, N_("Write the key to FILE, mode 0600 (required)"),
		 N_("FILE")},
		{"days", 0, 0, G_OPTION_ARG_INT, &days, N_("Validity in days (default 825)"), N_("N")},
		{NULL}};
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (NULL, _("Issue a certificate from the fleet CA."), entries);
	static const gchar *const default_sans[] = {"127.0.0.1", "localhost", NULL};
	PpnTlsRole role;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl cert issue' takes no arguments"));
		return FALSE;
	}
	if (ca_dir == NULL || role_str == NULL || name == NULL || cert_path == NULL || key_path == NULL) {
		ppnctl_usage_error (error, _("--ca-dir, --role, --name, --cert and --key are required"));
		return FALSE;
	}
	role = ppn_tls_role_from_string (role_str);
	if (role == PPN_TLS_ROLE_UNKNOWN) {
		ppnctl_usage_error (error, _("--role must be fleet, agent or operator, not '%s'"), role_str);
		return FALSE;
	}
	if (!ppn_name_validate ("--name", name, error)) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}
	if (g_strcmp0 (cert_path, key_path) == 0) {
		ppnctl_usage_error (error, _("--cert and --key must be different files"));
		return FALSE;
	}
	for (guint i = 0; sans != NULL && sans[i] != NULL; i++) {
		if (!ppnctl_pki_check_san (sans[i], error))
			return FALSE;
	}
	if (!ppnctl_pki_check_days (days, error) ||
	    !ppn_tls_issue (ca_dir, role, name,
			    sans != NULL ? (const gchar *const *)sans : default_sans, (guint)days, cert_path,
			    key_path, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		ppnctl_pki_print_files ("role", ppn_tls_role_to_string (role), "name", name, "cert", cert_path,
					"key", key_path, NULL);
	} else {
		g_print (_("Issued the certificate of %s (role %s)\n"), name, ppn_tls_role_to_string (role));
		g_print (_("Certificate: %s\n"), cert_path);
		g_print (_("Key:         %s (mode 0600)\n"), key_path);
	}
	return TRUE;
}

static const PpnctlCommand cert_commands[] = {
	{"issue", ppnctl_cert_issue, N_("Issue a certificate from the fleet CA")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_cert (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("cert", cert_commands, argc, argv, cancellable, error);
}
