#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-token.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

#define PPNCTL_MAX_VMS_DEFAULT 4
#define PPNCTL_MAX_VMS_MAX 10000

typedef int PpnctlFd;
static void
ppnctl_fd_clear (PpnctlFd *fd)
{
	if (*fd >= 0)
		close (*fd);
	*fd = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PpnctlFd, ppnctl_fd_clear)

static void
ppnctl_secret_clear (gchar **secret)
{
	if (*secret != NULL)
		memset (*secret, 0, strlen (*secret));
	g_clear_pointer (secret, g_free);
}

/* two "tenant add" at once must not lose one: the file is replaced by
 * rename, so the lock is on its folder, which outlives every version */
static gboolean
ppnctl_tenant_lock (const gchar *path, PpnctlFd *out, GError **error)
{
	g_autofree gchar *dir = g_path_get_dirname (path);
	g_auto(PpnctlFd) fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || flock (fd, LOCK_EX) != 0) {
		int errsv = errno;
		g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv), _("Cannot lock %s: %s"), dir,
			     g_strerror (errsv));
		return FALSE;
	}
	*out = fd;
	fd = -1;
	return TRUE;
}

static void
ppnctl_tenant_print (const gchar *name, const gchar *token, const gchar *path)
{
	if (ppnctl_output_json ()) {
		g_autoptr(JsonObject) obj = json_object_new ();
		g_autoptr(JsonNode) node = NULL;
		json_object_set_string_member (obj, "tenant", name);
		json_object_set_string_member (obj, "token", token);
		node = json_node_init_object (json_node_alloc (), obj);
		ppnctl_print_json (node);
	} else {
		/* stdout is the token alone, for TOKEN=$(ppnctl tenant add ...) */
		g_print ("%s\n", token);
	}
	g_printerr (_("ppnctl: added tenant '%s' to %s. The token is shown only this once: only its hash is "
		      "stored. Send SIGHUP to ppn-fleetd to load it.\n"),
		    name, path);
}

static gboolean
ppnctl_tenant_add (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *path = NULL;
	gint max_vms = PPNCTL_MAX_VMS_DEFAULT;
	const GOptionEntry entries[] = {
		{"tenants-file", 0, 0, G_OPTION_ARG_FILENAME, &path,
		 N_("The fleet's tenants file, created if missing (required)"), N_("FILE")},
		{"max-vms", 0, 0, G_OPTION_ARG_INT, &max_vms, N_("VMs the tenant may run at once (default 4)"),
		 N_("N")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		_("NAME --tenants-file FILE"),
		_("Add a tenant and print its new bearer token once; only the token's hash is stored."), entries);
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autoptr(GError) local = NULL;
	g_auto(PpnctlFd) lock = -1;
	g_autofree gchar *group = NULL;
	g_autofree gchar *hash = NULL;
	g_autofree gchar *data = NULL;
	__attribute__ ((cleanup (ppnctl_secret_clear))) gchar *token = NULL;
	gsize len = 0;
	struct stat st;
	gboolean existed;
	const gchar *name;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 2) {
		ppnctl_usage_error (error, _("'ppnctl tenant add' takes one NAME"));
		return FALSE;
	}
	name = argv[1];
	if (!ppn_name_validate ("NAME", name, error)) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}
	if (path == NULL || path[0] == '\0') {
		ppnctl_usage_error (error, _("--tenants-file FILE is required"));
		return FALSE;
	}
	if (max_vms < 1 || max_vms > PPNCTL_MAX_VMS_MAX) {
		ppnctl_usage_error (error, _("--max-vms must be from 1 to %d"), PPNCTL_MAX_VMS_MAX);
		return FALSE;
	}

	if (!ppnctl_tenant_lock (path, &lock, error))
		return FALSE;
	existed = stat (path, &st) == 0;
	if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_KEEP_COMMENTS | G_KEY_FILE_KEEP_TRANSLATIONS,
					&local)) {
		if (!g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_propagate_prefixed_error (error, g_steal_pointer (&local), _("Cannot read %s: "), path);
			return FALSE;
		}
		g_clear_error (&local);
	}
	group = g_strdup_printf ("tenant %s", name);
	if (g_key_file_has_group (kf, group)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT, _("Tenant '%s' already exists in %s"), name, path);
		return FALSE;
	}

	token = ppn_token_new (error);
	if (token == NULL)
		return FALSE;
	hash = ppn_token_hash (token);
	if (hash == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot hash the new token"));
		return FALSE;
	}
	g_key_file_set_string (kf, group, "token-hash", hash);
	g_key_file_set_integer (kf, group, "max-vms", max_vms);
	data = g_key_file_to_data (kf, &len, error);
	if (data == NULL)
		return FALSE;
	if (!g_file_set_contents_full (path, data, (gssize)len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error)) {
		g_prefix_error (error, _("Cannot write %s: "), path);
		return FALSE;
	}
	/* the daemon reading the file may be another user: root keeps its owner */
	if (existed && geteuid () == 0 && (st.st_uid != 0 || st.st_gid != 0) &&
	    chown (path, st.st_uid, st.st_gid) != 0) {
		int errsv = errno;
		g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
			     _("Cannot give %s back to its owner: %s"), path, g_strerror (errsv));
		return FALSE;
	}
	ppnctl_tenant_print (name, token, path);
	return TRUE;
}

static const PpnctlCommand tenant_commands[] = {
	{"add", ppnctl_tenant_add, N_("Add a tenant and print its token")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_tenant (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("tenant", tenant_commands, argc, argv, cancellable, error);
}
