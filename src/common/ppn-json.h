#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define PPN_JSON_MAX_DEPTH 16

gboolean ppn_json_precheck (const gchar *data, gsize len, guint max_depth, GError **error);
JsonNode *ppn_json_parse_object (const gchar *data, gsize len, guint max_depth, GError **error);
gboolean ppn_json_check_members (JsonObject *obj,
				 const gchar *context,
				 const gchar *const *allowed,
				 GError **error);
gboolean ppn_json_get_string (JsonObject *obj,
			      const gchar *member,
			      gboolean required,
			      const gchar **out,
			      GError **error);
gboolean ppn_json_get_int (JsonObject *obj,
			   const gchar *member,
			   gboolean required,
			   gint64 min,
			   gint64 max,
			   gint64 *out,
			   GError **error);
gboolean ppn_json_get_array (JsonObject *obj,
			     const gchar *member,
			     gboolean required,
			     JsonArray **out,
			     GError **error);
gchar *ppn_json_to_data (JsonNode *node, gsize *len);
gchar *ppn_json_format_time (gint64 unix_usec);

G_END_DECLS
