#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gio/gio.h>
#include <string.h>

#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-i18n.h"

GKeyFile *
ppn_config_load (const gchar *path, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new ();

	g_return_val_if_fail (path != NULL, NULL);
	if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error)) {
		g_prefix_error (error, _("Cannot read configuration file %s: "), path);
		return NULL;
	}
	return g_steal_pointer (&kf);
}

/* a misspelt key is an error, not a silently ignored default */
gboolean
ppn_config_check_keys (GKeyFile *kf,
		       const gchar *path,
		       const gchar *const *groups,
		       const gchar *const *const *keys,
		       GError **error)
{
	g_auto(GStrv) present = g_key_file_get_groups (kf, NULL);

	for (guint i = 0; present[i] != NULL; i++) {
		g_auto(GStrv) names = NULL;
		gint idx = -1;

		for (guint j = 0; groups[j] != NULL; j++) {
			if (g_strcmp0 (groups[j], present[i]) == 0) {
				idx = (gint)j;
				break;
			}
		}
		if (idx < 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: unknown group [%s]"), path, present[i]);
			return FALSE;
		}
		names = g_key_file_get_keys (kf, present[i], NULL, NULL);
		for (guint k = 0; names != NULL && names[k] != NULL; k++) {
			if (!g_strv_contains (keys[idx], names[k])) {
				g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("%s: unknown key '%s' in group [%s]"),
					     path, names[k], present[i]);
				return FALSE;
			}
		}
	}
	return TRUE;
}

gchar *
ppn_config_get_string (GKeyFile *kf, const gchar *group, const gchar *key, const gchar *fallback)
{
	g_autofree gchar *value = g_key_file_get_string (kf, group, key, NULL);

	if (value != NULL) {
		g_strstrip (value);
		if (value[0] != '\0')
			return g_steal_pointer (&value);
	}
	return g_strdup (fallback);
}

/* relative paths are taken relative to the configuration file's folder */
gchar *
ppn_config_get_path (GKeyFile *kf,
		     const gchar *config_path,
		     const gchar *group,
		     const gchar *key,
		     const gchar *fallback)
{
	g_autofree gchar *value = ppn_config_get_string (kf, group, key, fallback);
	g_autofree gchar *dir = NULL;

	if (value == NULL || g_path_is_absolute (value) || config_path == NULL)
		return g_steal_pointer (&value);
	dir = g_path_get_dirname (config_path);
	return g_canonicalize_filename (value, dir);
}

gboolean
ppn_config_get_uint (GKeyFile *kf,
		     const gchar *group,
		     const gchar *key,
		     guint64 fallback,
		     guint64 min,
		     guint64 max,
		     guint64 *out,
		     GError **error)
{
	g_autofree gchar *value = ppn_config_get_string (kf, group, key, NULL);
	guint64 v;
	g_autoptr(GError) local = NULL;

	if (value == NULL) {
		*out = fallback;
		return TRUE;
	}
	if (!g_ascii_string_to_unsigned (value, 10, min, max, &v, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("[%s] %s: expected a whole number from %" G_GUINT64_FORMAT
			       " to %" G_GUINT64_FORMAT ", got '%s'"),
			     group, key, min, max, value);
		return FALSE;
	}
	*out = v;
	return TRUE;
}

static gboolean
ppn_config_split_address (const gchar *str, gchar **host, guint16 *port)
{
	const gchar *colon;
	g_autofree gchar *h = NULL;
	guint64 p;

	if (str[0] == '[') {
		const gchar *end = strchr (str, ']');
		if (end == NULL || end[1] != ':')
			return FALSE;
		h = g_strndup (str + 1, end - str - 1);
		colon = end + 1;
	} else {
		colon = strrchr (str, ':');
		if (colon == NULL || strchr (str, ':') != colon)
			return FALSE;
		h = g_strndup (str, colon - str);
	}
	if (h[0] == '\0')
		return FALSE;
	if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &p, NULL))
		return FALSE;
	*host = g_steal_pointer (&h);
	*port = (guint16)p;
	return TRUE;
}

/* "127.0.0.1:8443", "[::1]:8443", "localhost:8443" */
gboolean
ppn_config_parse_address (const gchar *str, gchar **host, guint16 *port, GError **error)
{
	g_return_val_if_fail (str != NULL, FALSE);
	if (!ppn_config_split_address (str, host, port)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("'%s' is not an address of the form HOST:PORT or [IPV6]:PORT"), str);
		return FALSE;
	}
	return TRUE;
}

/* "20000-20999" */
gboolean
ppn_config_parse_port_range (const gchar *str, guint16 *first, guint16 *last, GError **error)
{
	g_auto(GStrv) parts = NULL;
	guint64 a, b;

	g_return_val_if_fail (str != NULL, FALSE);
	parts = g_strsplit (str, "-", -1);
	if (g_strv_length (parts) != 2 ||
	    !g_ascii_string_to_unsigned (g_strstrip (parts[0]), 10, 1, 65535, &a, NULL) ||
	    !g_ascii_string_to_unsigned (g_strstrip (parts[1]), 10, 1, 65535, &b, NULL) ||
	    a > b) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("'%s' is not a port range of the form FIRST-LAST (1-65535, FIRST <= LAST)"),
			     str);
		return FALSE;
	}
	*first = (guint16)a;
	*last = (guint16)b;
	return TRUE;
}
