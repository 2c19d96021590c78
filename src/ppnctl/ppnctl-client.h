#pragma once

/* what every ppnctl command shares: the global options, usage errors and
 * exit codes, output helpers (tables, key: value lists, JSON) and the
 * HTTPS client of the tenant API */
#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "ppn-ledger.h"
#include "ppnctl-builtins.h"

G_BEGIN_DECLS

/* exit codes scripts rely on; docs/ppnctl.1 and --help list the same */
typedef enum {
	PPNCTL_EXIT_OK = 0,
	PPNCTL_EXIT_FAILURE = 1,      /* network, TLS, files, internal */
	PPNCTL_EXIT_USAGE = 2,	      /* bad command line, checked before anything is sent */
	PPNCTL_EXIT_NOT_FOUND = 3,    /* 404 */
	PPNCTL_EXIT_UNAUTHORIZED = 4, /* 401 */
	PPNCTL_EXIT_FORBIDDEN = 5,    /* 403: quota exceeded, forbidden */
	PPNCTL_EXIT_INVALID = 6,      /* 400, 409, 413, 415; a ledger or proof that does not verify */
	PPNCTL_EXIT_UNAVAILABLE = 7,  /* 503: no capacity, unavailable */
} PpnctlExit;

/* usage errors live in G_OPTION_ERROR, next to GOptionContext's own */
void ppnctl_usage_error (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);
void ppnctl_error_to_usage (GError **error);
PpnctlExit ppnctl_exit_code_for_error (const GError *error);
const gchar *ppnctl_exit_codes_help (void);

GOptionContext *ppnctl_option_context_new (const gchar *parameter_string,
					   const gchar *summary,
					   const GOptionEntry *entries);
gboolean ppnctl_option_context_parse (GOptionContext *context, int *argc, char ***argv, GError **error);
gboolean ppnctl_dispatch (const gchar *group,
			  const PpnctlCommand *commands,
			  int argc,
			  char **argv,
			  GCancellable *cancellable,
			  GError **error);
gchar *ppnctl_commands_help (const PpnctlCommand *commands);

/* output */
gboolean ppnctl_output_json (void);
void ppnctl_print_json (JsonNode *node);
gchar *ppnctl_sanitize (const gchar *str);
const gchar *ppnctl_json_string (JsonObject *obj, const gchar *member);
gchar *ppnctl_json_int (JsonObject *obj, const gchar *member);

typedef struct _PpnctlTable PpnctlTable;
PpnctlTable *ppnctl_table_new (const gchar *first_header, ...) G_GNUC_NULL_TERMINATED;
void ppnctl_table_add_row (PpnctlTable *table, const gchar *first_cell, ...) G_GNUC_NULL_TERMINATED;
void ppnctl_table_print (PpnctlTable *table);
void ppnctl_table_free (PpnctlTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnctlTable, ppnctl_table_free)

/* a key: value listing is a table without header, labels ending in ':' */
void ppnctl_print_fields (const gchar *first_label, ...) G_GNUC_NULL_TERMINATED;

/* the tenant API client, and the operators' client of the mesh listener */
typedef struct _PpnctlClient PpnctlClient;
PpnctlClient *ppnctl_client_new (GError **error);
PpnctlClient *ppnctl_client_new_operator (const gchar *url, const gchar *cert, const gchar *key, GError **error);
void ppnctl_client_free (PpnctlClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnctlClient, ppnctl_client_free)
gboolean ppnctl_client_call (PpnctlClient *client,
			     const gchar *method,
			     const gchar *path,
			     JsonNode *body,
			     JsonNode **out,
			     GCancellable *cancellable,
			     GError **error);

/* a tree head saved as JSON (ppnctl ledger show-head, ppnctl audit
 * --save-head), strictly read; errors name the file */
PpnTreeHead *ppnctl_ledger_read_head (const gchar *path, GError **error);

G_END_DECLS
