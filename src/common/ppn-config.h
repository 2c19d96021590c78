#pragma once

#include <glib.h>

G_BEGIN_DECLS

GKeyFile *ppn_config_load (const gchar *path, GError **error);
gboolean ppn_config_check_keys (GKeyFile *kf,
				const gchar *path,
				const gchar *const *groups,
				const gchar *const *const *keys,
				GError **error);
gchar *ppn_config_get_string (GKeyFile *kf,
			      const gchar *group,
			      const gchar *key,
			      const gchar *fallback);
gchar *ppn_config_get_path (GKeyFile *kf,
			    const gchar *config_path,
			    const gchar *group,
			    const gchar *key,
			    const gchar *fallback);
gboolean ppn_config_get_uint (GKeyFile *kf,
			      const gchar *group,
			      const gchar *key,
			      guint64 fallback,
			      guint64 min,
			      guint64 max,
			      guint64 *out,
			      GError **error);
gboolean ppn_config_parse_address (const gchar *str,
				   gchar **host,
				   guint16 *port,
				   GError **error);
gboolean ppn_config_parse_port_range (const gchar *str,
				      guint16 *first,
				      guint16 *last,
				      GError **error);

G_END_DECLS
