#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <errno.h>
#include <fcntl.h>
#include <libsoup/soup.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-tls.h"
#include "ppnctl-client.h"

#define PPNCTL_DEFAULT_URL "https://127.0.0.1:8443"
/* POST /v1/vms answers when the guest runs, which takes a while under TCG */
#define PPNCTL_TIMEOUT_SECONDS 300
#define PPNCTL_TOKEN_MAX 1024

/* the global options: accepted before the command and after it */
static gchar *opt_url;
static gchar *opt_ca;
static gchar *opt_token_file;
static gboolean opt_json;

static const GOptionEntry global_entries[] = {
	{"url", 0, 0, G_OPTION_ARG_STRING, &opt_url,
	 N_("Tenant API URL (default $PPN_URL, else " PPNCTL_DEFAULT_URL ")"), N_("URL")},
	{"ca", 0, 0, G_OPTION_ARG_FILENAME, &opt_ca, N_("The only CA trusted for the server (default $PPN_CA)"),
	 N_("FILE")},
	{"token-file", 0, 0, G_OPTION_ARG_FILENAME, &opt_token_file,
	 N_("Read the bearer token from FILE (default $PPN_TOKEN)"), N_("FILE")},
	{"json", 0, 0, G_OPTION_ARG_NONE, &opt_json, N_("Print the server's JSON instead of tables"), NULL},
	{NULL}};

void
ppnctl_usage_error (GError **error, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *message = NULL;

	va_start (args, format);
	message = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, message);
}

/* a value checked here before sending is a usage error, whatever
 * domain the check itself reported in */
void
ppnctl_error_to_usage (GError **error)
{
	if (error == NULL || *error == NULL)
		return;
	(*error)->domain = G_OPTION_ERROR;
	(*error)->code = G_OPTION_ERROR_BAD_VALUE;
}

PpnctlExit
ppnctl_exit_code_for_error (const GError *error)
{
	if (error == NULL)
		return PPNCTL_EXIT_OK;
	if (error->domain == G_OPTION_ERROR)
		return PPNCTL_EXIT_USAGE;
	if (error->domain != PPN_ERROR)
		return PPNCTL_EXIT_FAILURE;
	switch ((PpnError)error->code) {
	case PPN_ERROR_NOT_FOUND:
		return PPNCTL_EXIT_NOT_FOUND;
	case PPN_ERROR_UNAUTHORIZED:
		return PPNCTL_EXIT_UNAUTHORIZED;
	case PPN_ERROR_FORBIDDEN:
	case PPN_ERROR_QUOTA_EXCEEDED:
		return PPNCTL_EXIT_FORBIDDEN;
	case PPN_ERROR_INVALID_REQUEST:
	case PPN_ERROR_CONFLICT:
	case PPN_ERROR_PAYLOAD_TOO_LARGE:
	case PPN_ERROR_UNSUPPORTED_MEDIA_TYPE:
		return PPNCTL_EXIT_INVALID;
	case PPN_ERROR_NO_CAPACITY:
	case PPN_ERROR_UNAVAILABLE:
		return PPNCTL_EXIT_UNAVAILABLE;
	case PPN_ERROR_INTERNAL:
	case PPN_ERROR_METHOD_NOT_ALLOWED:
	case PPN_ERROR_TOO_MANY_REQUESTS:
	case PPN_ERROR_LAST:
	default:
		return PPNCTL_EXIT_FAILURE;
	}
}

const gchar *
ppnctl_exit_codes_help (void)
{
	return _("Exit status:\n"
		 "  0  success\n"
		 "  1  other error (network, TLS, files, internal)\n"
		 "  2  usage error (bad command line; nothing was sent)\n"
		 "  3  not found (404)\n"
		 "  4  unauthorized (401)\n"
		 "  5  quota exceeded or forbidden (403)\n"
		 "  6  invalid request (400, 409, 413, 415), or a ledger or proof that does\n"
		 "     not verify\n"
		 "  7  no capacity or unavailable (503)\n"
		 "\n"
		 "Environment: PPN_URL, PPN_CA, PPN_TOKEN; for operators' node commands\n"
		 "PPN_MESH_URL, PPN_CERT, PPN_KEY. There is no option taking the token\n"
		 "itself, because the command line is visible to every user in ps(1).");
}

GOptionContext *
ppnctl_option_context_new (const gchar *parameter_string, const gchar *summary, const GOptionEntry *entries)
{
	GOptionContext *context = g_option_context_new (parameter_string);

	/* the global options are main entries everywhere, so every --help shows them */
	g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
	if (entries != NULL)
		g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
	g_option_context_add_main_entries (context, global_entries, GETTEXT_PACKAGE);
	if (summary != NULL)
		g_option_context_set_summary (context, summary);
	g_option_context_set_description (context, ppnctl_exit_codes_help ());
	return context;
}

gboolean
ppnctl_option_context_parse (GOptionContext *context, int *argc, char ***argv, GError **error)
{
	/* GOptionContext's own errors are G_OPTION_ERROR: exit 2 */
	return g_option_context_parse (context, argc, argv, error);
}

gchar *
ppnctl_commands_help (const PpnctlCommand *commands)
{
	GString *s = g_string_new (_("Commands:"));
	int width = 8;

	for (guint i = 0; commands[i].name != NULL; i++)
		width = MAX (width, (int)strlen (commands[i].name));
	for (guint i = 0; commands[i].name != NULL; i++)
		g_string_append_printf (s, "\n  %-*s %s", width, commands[i].name, _(commands[i].summary));
	return g_string_free (s, FALSE);
}

/* "ppnctl vm create ...": argv[0] is the group, argv[1] the subcommand */
gboolean
ppnctl_dispatch (const gchar *group,
		 const PpnctlCommand *commands,
		 int argc,
		 char **argv,
		 GCancellable *cancellable,
		 GError **error)
{
	const gchar *name = argc > 1 ? argv[1] : NULL;

	if (name != NULL && (g_strcmp0 (name, "--help") == 0 || g_strcmp0 (name, "-h") == 0)) {
		g_autofree gchar *help = ppnctl_commands_help (commands);
		g_print (_("Usage:\n  ppnctl %s COMMAND [OPTION…]\n\n%s\n"), group, help);
		return TRUE;
	}
	for (guint i = 0; name != NULL && commands[i].name != NULL; i++) {
		if (g_strcmp0 (commands[i].name, name) == 0) {
			g_autofree gchar *prgname = g_strdup_printf ("ppnctl %s %s", group, name);
			g_set_prgname (prgname);
			return commands[i].fn (argc - 1, argv + 1, cancellable, error);
		}
	}
	{
		g_autofree gchar *help = ppnctl_commands_help (commands);
		if (name == NULL)
			ppnctl_usage_error (error, _("'ppnctl %s' needs a command.\n%s"), group, help);
		else
			ppnctl_usage_error (error, _("Unknown command 'ppnctl %s %s'.\n%s"), group, name, help);
	}
	return FALSE;
}

/* ---- output ----------------------------------------------------------- */

gboolean
ppnctl_output_json (void)
{
	return opt_json;
}

void
ppnctl_print_json (JsonNode *node)
{
	g_autoptr(JsonGenerator) gen = json_generator_new ();
	g_autofree gchar *data = NULL;

	json_generator_set_pretty (gen, TRUE);
	json_generator_set_indent (gen, 2);
	json_generator_set_root (gen, node);
	data = json_generator_to_data (gen, NULL);
	g_print ("%s\n", data);
}

/* what a server sends reaches a terminal: no control characters, no
 * escape sequences, valid UTF-8 */
gchar *
ppnctl_sanitize (const gchar *str)
{
	g_autofree gchar *valid = NULL;

	if (str == NULL)
		return g_strdup ("-");
	valid = g_utf8_make_valid (str, -1);
	for (gchar *p = valid; *p != '\0'; p++) {
		if ((guchar)*p < 0x20 || (guchar)*p == 0x7f)
			*p = '?';
	}
	return g_steal_pointer (&valid);
}

/* NULL when absent or not a string; for display only */
const gchar *
ppnctl_json_string (JsonObject *obj, const gchar *member)
{
	const gchar *value = NULL;

	if (obj == NULL || !ppn_json_get_string (obj, member, FALSE, &value, NULL))
		return NULL;
	return value;
}

gchar *
ppnctl_json_int (JsonObject *obj, const gchar *member)
{
	gint64 value = 0;
	JsonNode *node = obj != NULL ? json_object_get_member (obj, member) : NULL;

	if (node == NULL || !ppn_json_get_int (obj, member, TRUE, G_MININT64, G_MAXINT64, &value, NULL))
		return g_strdup ("-");
	return g_strdup_printf ("%" G_GINT64_FORMAT, value);
}

struct _PpnctlTable {
	guint n_columns;
	GPtrArray *rows; /* of GStrv, already sanitized */
};

static GStrv
ppnctl_collect_cells (const gchar *first, va_list args, guint n_max)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
	guint n = 0;

	for (const gchar *cell = first; cell != NULL && n < n_max; cell = va_arg (args, const gchar *), n++) {
		g_autofree gchar *clean = ppnctl_sanitize (cell);
		g_strv_builder_add (builder, clean);
	}
	return g_strv_builder_end (builder);
}

PpnctlTable *
ppnctl_table_new (const gchar *first_header, ...)
{
	PpnctlTable *table = g_new0 (PpnctlTable, 1);
	va_list args;
	GStrv header;

	table->rows = g_ptr_array_new_with_free_func ((GDestroyNotify)g_strfreev);
	va_start (args, first_header);
	header = ppnctl_collect_cells (first_header, args, G_MAXUINT);
	va_end (args);
	table->n_columns = g_strv_length (header);
	g_ptr_array_add (table->rows, header);
	return table;
}

/* cells are the table's own strings, so an empty value can be "" */
void
ppnctl_table_add_row (PpnctlTable *table, const gchar *first_cell, ...)
{
	va_list args;

	va_start (args, first_cell);
	g_ptr_array_add (table->rows, ppnctl_collect_cells (first_cell, args, table->n_columns));
	va_end (args);
}

void
ppnctl_table_print (PpnctlTable *table)
{
	g_autofree glong *widths = g_new0 (glong, table->n_columns);

	for (guint r = 0; r < table->rows->len; r++) {
		GStrv row = g_ptr_array_index (table->rows, r);
		for (guint c = 0; c < table->n_columns && row[c] != NULL; c++)
			widths[c] = MAX (widths[c], g_utf8_strlen (row[c], -1));
	}
	for (guint r = 0; r < table->rows->len; r++) {
		GStrv row = g_ptr_array_index (table->rows, r);
		g_autoptr(GString) line = g_string_new (NULL);
		for (guint c = 0; c < table->n_columns && row[c] != NULL; c++) {
			if (c > 0)
				g_string_append (line, "  ");
			g_string_append (line, row[c]);
			if (c + 1 < table->n_columns) {
				for (glong pad = g_utf8_strlen (row[c], -1); pad < widths[c]; pad++)
					g_string_append_c (line, ' ');
			}
		}
		g_print ("%s\n", line->str);
	}
}

void
ppnctl_table_free (PpnctlTable *table)
{
	if (table == NULL)
		return;
	g_ptr_array_unref (table->rows);
	g_free (table);
}

void
ppnctl_print_fields (const gchar *first_label, ...)
{
	g_autoptr(GPtrArray) labels = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
	glong width = 0;
	va_list args;

	va_start (args, first_label);
	for (const gchar *label = first_label; label != NULL; label = va_arg (args, const gchar *)) {
		const gchar *value = va_arg (args, const gchar *);
		gchar *l = g_strconcat (label, ":", NULL);
		width = MAX (width, g_utf8_strlen (l, -1));
		g_ptr_array_add (labels, l);
		/* a multi-line value keeps its lines, each aligned */
		g_ptr_array_add (values, g_strdup (value != NULL ? value : "-"));
	}
	va_end (args);
	for (guint i = 0; i < labels->len; i++) {
		g_auto(GStrv) lines = g_strsplit (g_ptr_array_index (values, i), "\n", -1);
		for (guint j = 0; lines[j] != NULL; j++) {
			g_autofree gchar *clean = ppnctl_sanitize (lines[j]);
			const gchar *label = j == 0 ? g_ptr_array_index (labels, i) : "";
			glong pad = width - g_utf8_strlen (label, -1);
			g_print ("%s%*s %s\n", label, (int)pad, "", clean);
		}
	}
}

/* ---- the tenant API client -------------------------------------------- */

struct _PpnctlClient {
	SoupSession *session;
	gchar *base_url; /* no trailing slash */
	gchar *authorization; /* NULL for an operator's client */
	gchar *token; /* only to redact it, should a server echo it */
	GTlsCertificate *cert; /* an operator's client certificate, or NULL */
};

static void
ppnctl_secret_free (gchar *secret)
{
	if (secret == NULL)
		return;
	memset (secret, 0, strlen (secret));
	g_free (secret);
}

void
ppnctl_client_free (PpnctlClient *client)
{
	if (client == NULL)
		return;
	g_clear_object (&client->session);
	g_clear_object (&client->cert);
	g_free (client->base_url);
	ppnctl_secret_free (client->authorization);
	ppnctl_secret_free (client->token);
	g_free (client);
}

/* @url without its trailing slashes, if it is https:// with nothing a
 * credential could leak through */
static gchar *
ppnctl_client_base_url (const gchar *url, GError **error)
{
	g_autoptr(GUri) uri = NULL;
	g_autofree gchar *base = NULL;
	gsize len;

	uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
	if (uri == NULL || g_strcmp0 (g_uri_get_scheme (uri), "https") != 0 || g_uri_get_host (uri) == NULL ||
	    g_uri_get_host (uri)[0] == '\0' || g_uri_get_userinfo (uri) != NULL || g_uri_get_query (uri) != NULL ||
	    g_uri_get_fragment (uri) != NULL) {
		/* the token must never travel in clear text */
		ppnctl_usage_error (error, _("The URL '%s' is not of the form https://HOST[:PORT][/PATH]"), url);
		return NULL;
	}
	base = g_strdup (url);
	len = strlen (base);
	while (len > 0 && base[len - 1] == '/')
		base[--len] = '\0';
	return g_steal_pointer (&base);
}

static GTlsDatabase *
ppnctl_client_load_ca (GError **error)
{
	const gchar *ca = opt_ca != NULL ? opt_ca : g_getenv ("PPN_CA");

	if (ca == NULL || ca[0] == '\0') {
		ppnctl_usage_error (error, _("No CA to trust: set PPN_CA or use --ca FILE"));
		return NULL;
	}
	return ppn_tls_load_ca (ca, error);
}

static gchar *
ppnctl_client_read_token_file (const gchar *path, GError **error)
{
	g_autoptr(GMappedFile) mapped = NULL;
	g_autofree gchar *data = NULL;
	gsize len = 0;
	struct stat st;

	if (stat (path, &st) == 0 && S_ISREG (st.st_mode)) {
		if (st.st_size > PPNCTL_TOKEN_MAX) {
			g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				     _("Token file %s is larger than %d bytes"), path, PPNCTL_TOKEN_MAX);
			return NULL;
		}
		if ((st.st_mode & 0077) != 0)
			g_printerr (_("ppnctl: warning: token file %s is readable by other users\n"), path);
	}
	if (!g_file_get_contents (path, &data, &len, error)) {
		g_prefix_error (error, _("Cannot read token file %s: "), path);
		return NULL;
	}
	if (len > PPNCTL_TOKEN_MAX || strlen (data) != len) {
		ppnctl_secret_free (g_steal_pointer (&data));
		g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			     _("Token file %s does not hold a token"), path);
		return NULL;
	}
	return g_steal_pointer (&data);
}

/* the token is never part of a message: only where it came from is */
static gchar *
ppnctl_client_token (GError **error)
{
	g_autofree gchar *token = NULL;
	const gchar *source = NULL;

	if (opt_token_file != NULL) {
		token = ppnctl_client_read_token_file (opt_token_file, error);
		if (token == NULL)
			return NULL;
		source = opt_token_file;
	} else if (g_getenv ("PPN_TOKEN") != NULL) {
		token = g_strdup (g_getenv ("PPN_TOKEN"));
		source = "PPN_TOKEN";
	} else {
		ppnctl_usage_error (error, _("No token: set PPN_TOKEN or use --token-file FILE"));
		return NULL;
	}
	g_strstrip (token);
	for (const gchar *p = token; *p != '\0'; p++) {
		if ((guchar)*p <= 0x20 || (guchar)*p >= 0x7f) {
			ppnctl_secret_free (g_steal_pointer (&token));
			ppnctl_usage_error (error, _("The token from %s must be one line of printable ASCII"), source);
			return NULL;
		}
	}
	if (token[0] == '\0') {
		ppnctl_usage_error (error, _("The token from %s is empty"), source);
		return NULL;
	}
	return g_steal_pointer (&token);
}

PpnctlClient *
ppnctl_client_new (GError **error)
{
	g_autoptr(PpnctlClient) client = g_new0 (PpnctlClient, 1);
	const gchar *url = opt_url != NULL ? opt_url : g_getenv ("PPN_URL");
	g_autoptr(GTlsDatabase) db = NULL;

	client->base_url = ppnctl_client_base_url (url != NULL && url[0] != '\0' ? url : PPNCTL_DEFAULT_URL, error);
	if (client->base_url == NULL)
		return NULL;
	db = ppnctl_client_load_ca (error);
	if (db == NULL)
		return NULL;
	client->token = ppnctl_client_token (error);
	if (client->token == NULL)
		return NULL;
	client->authorization = g_strconcat ("Bearer ", client->token, NULL);
	client->session = ppn_http_session_new (db, PPNCTL_TIMEOUT_SECONDS);
	return g_steal_pointer (&client);
}

/* an operator's client of the mesh listener: no token, the operator
 * certificate in the TLS handshake */
PpnctlClient *
ppnctl_client_new_operator (const gchar *url, const gchar *cert, const gchar *key, GError **error)
{
	g_autoptr(PpnctlClient) client = g_new0 (PpnctlClient, 1);
	g_autoptr(GTlsDatabase) db = NULL;

	g_return_val_if_fail (url != NULL, NULL);
	client->base_url = ppnctl_client_base_url (url, error);
	if (client->base_url == NULL)
		return NULL;
	if (cert == NULL || cert[0] == '\0' || key == NULL || key[0] == '\0') {
		ppnctl_usage_error (error, _("No operator certificate: set PPN_CERT and PPN_KEY or use --cert FILE"
					     " --key FILE (ppnctl cert issue --role operator makes one)"));
		return NULL;
	}
	db = ppnctl_client_load_ca (error);
	if (db == NULL)
		return NULL;
	client->cert = ppn_tls_load_certificate (cert, key, error);
	if (client->cert == NULL)
		return NULL;
	client->session = ppn_http_session_new (db, PPNCTL_TIMEOUT_SECONDS);
	return g_steal_pointer (&client);
}

/* should a server ever echo the token, it still does not reach a terminal */
static void
ppnctl_client_redact (PpnctlClient *client, GError *error)
{
	g_autoptr(GString) s = NULL;

	if (error == NULL || client->token == NULL || strstr (error->message, client->token) == NULL)
		return;
	s = g_string_new (error->message);
	g_string_replace (s, client->token, "[token]", 0);
	g_free (error->message);
	error->message = g_string_free (g_steal_pointer (&s), FALSE);
}

/* @out is NULL after a success without a body (204) */
gboolean
ppnctl_client_call (PpnctlClient *client,
		    const gchar *method,
		    const gchar *path,
		    JsonNode *body,
		    JsonNode **out,
		    GCancellable *cancellable,
		    GError **error)
{
	g_autofree gchar *url = g_strconcat (client->base_url, path, NULL);
	g_autoptr(SoupMessage) msg = NULL;
	g_autoptr(GError) local = NULL;
	g_autoptr(JsonNode) node = NULL;
	SoupMessageHeaders *hdrs;

	msg = ppn_http_request_new (method, url, body, client->cert, error);
	if (msg == NULL)
		return FALSE;
	/* a redirect could carry the Authorization header elsewhere */
	soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
	hdrs = soup_message_get_request_headers (msg);
	if (client->authorization != NULL)
		soup_message_headers_replace (hdrs, "Authorization", client->authorization);
	soup_message_headers_replace (hdrs, "Accept", "application/json");
	node = ppn_http_send_json (client->session, msg, cancellable, &local);
	if (local != NULL) {
		ppnctl_client_redact (client, local);
		if (soup_message_get_status (msg) == SOUP_STATUS_NONE) {
			/* no answer at all: network or TLS, not the server's 503 */
			g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot reach %s: %s"),
				     client->base_url, local->message);
			return FALSE;
		}
		g_propagate_error (error, g_steal_pointer (&local));
		return FALSE;
	}
	*out = g_steal_pointer (&node);
	return TRUE;
}
