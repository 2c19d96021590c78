#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <string.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

typedef struct {
	gboolean is_object;
	gboolean expect_key;
	GHashTable *keys;
	const gchar *last_key; /* owned by keys */
} PpnJsonLevel;

static void
ppn_json_level_clear (PpnJsonLevel *level)
{
	g_clear_pointer (&level->keys, g_hash_table_unref);
}

/* json-glib wraps integers outside gint64 silently (-18446744073709551360
 * reads as 256), so an integer literal must fit before it is parsed */
static gboolean
ppn_json_check_integer (const gchar *data, gsize len, gsize *pos, const gchar *key, GError **error)
{
	gsize start = *pos;
	gboolean is_integer = TRUE;
	g_autofree gchar *literal = NULL;
	g_autoptr(GError) local = NULL;

	while (*pos < len && (g_ascii_isdigit (data[*pos]) || data[*pos] == '-' || data[*pos] == '+' ||
			      data[*pos] == '.' || data[*pos] == 'e' || data[*pos] == 'E')) {
		if (data[*pos] == '.' || data[*pos] == 'e' || data[*pos] == 'E')
			is_integer = FALSE;
		(*pos)++;
	}
	if (!is_integer)
		return TRUE; /* a double: ppn_json_get_int refuses it by type */
	literal = g_strndup (data + start, *pos - start);
	if (!g_ascii_string_to_signed (literal, 10, G_MININT64, G_MAXINT64, NULL, &local) &&
	    g_error_matches (local, G_NUMBER_PARSER_ERROR, G_NUMBER_PARSER_ERROR_OUT_OF_BOUNDS)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' holds a number out of range"), key != NULL ? key : "[]");
		return FALSE;
	}
	return TRUE;
}

/* json-glib recurses without a bound and keeps the last of duplicated
 * keys; scan the text first so neither can happen: nesting is bounded,
 * a duplicated key or an escaped key is refused */
gboolean
ppn_json_precheck (const gchar *data, gsize len, guint max_depth, GError **error)
{
	g_autoptr(GArray) stack = g_array_new (FALSE, TRUE, sizeof (PpnJsonLevel));
	gsize i = 0;

	gboolean done = FALSE;

	g_array_set_clear_func (stack, (GDestroyNotify)ppn_json_level_clear);
	while (i < len) {
		gchar c = data[i];

		/* json-glib reads the first value and ignores what follows it */
		if (done && !g_ascii_isspace (c)) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("The request body holds more than one JSON value"));
			return FALSE;
		}

		if (c == '\0') {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("The request body contains a NUL byte"));
			return FALSE;
		}
		if (c == '"') {
			gsize start = ++i;
			gboolean escaped = FALSE;

			while (i < len && data[i] != '"') {
				if (data[i] == '\\') {
					escaped = TRUE;
					/* json-glib cuts a string at an escaped NUL, so
					 * "a\u0000</name>" would quietly become "a" */
					if (i + 5 < len && data[i + 1] == 'u' &&
					    memcmp (data + i + 2, "0000", 4) == 0) {
						g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
								     _("The request body contains an escaped NUL (\\u0000)"));
						return FALSE;
					}
					i++;
				}
				i++;
			}
			if (i >= len)
				break; /* the parser reports the unterminated string */
			if (stack->len > 0) {
				PpnJsonLevel *top = &g_array_index (stack, PpnJsonLevel, stack->len - 1);
				if (top->is_object && top->expect_key) {
					g_autofree gchar *key = g_strndup (data + start, i - start);
					if (escaped) {
						g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
								     _("Object keys must not contain escape sequences"));
						return FALSE;
					}
					top->last_key = key;
					if (!g_hash_table_add (top->keys, g_steal_pointer (&key))) {
						g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
							     _("Field '%.*s' appears more than once"),
							     (int)MIN (i - start, 64), data + start);
						return FALSE;
					}
					top->expect_key = FALSE;
				}
			}
			i++;
			continue;
		}
		if (c == '-' || g_ascii_isdigit (c)) {
			const gchar *key = NULL;
			if (stack->len > 0) {
				PpnJsonLevel *top = &g_array_index (stack, PpnJsonLevel, stack->len - 1);
				key = top->is_object ? top->last_key : NULL;
			}
			if (!ppn_json_check_integer (data, len, &i, key, error))
				return FALSE;
			continue;
		}
		if (c == '{' || c == '[') {
			PpnJsonLevel level = {c == '{', c == '{', NULL, NULL};
			if (stack->len >= max_depth) {
				g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("The request body is nested deeper than %u levels"),
					     max_depth);
				return FALSE;
			}
			if (level.is_object)
				level.keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
			g_array_append_val (stack, level);
		} else if (c == '}' || c == ']') {
			if (stack->len > 0)
				g_array_set_size (stack, stack->len - 1);
			done = stack->len == 0;
		} else if (c == ',' && stack->len > 0) {
			PpnJsonLevel *top = &g_array_index (stack, PpnJsonLevel, stack->len - 1);
			if (top->is_object)
				top->expect_key = TRUE;
		}
		i++;
	}
	return TRUE;
}

JsonNode *
ppn_json_parse_object (const gchar *data, gsize len, guint max_depth, GError **error)
{
	g_autoptr(JsonParser) parser = NULL;
	g_autoptr(GError) local = NULL;
	JsonNode *root;

	if (!g_utf8_validate (data, len, NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The request body is not valid UTF-8"));
		return NULL;
	}
	if (!ppn_json_precheck (data, len, max_depth, error))
		return NULL;
	parser = json_parser_new_immutable ();
	if (!json_parser_load_from_data (parser, data, (gssize)len, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("The request body is not valid JSON: %s"), local->message);
		return NULL;
	}
	root = json_parser_get_root (parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("The request body must be a JSON object"));
		return NULL;
	}
	return json_node_ref (root);
}

gboolean
ppn_json_check_members (JsonObject *obj,
			const gchar *context,
			const gchar *const *allowed,
			GError **error)
{
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *node;

	json_object_iter_init (&iter, obj);
	while (json_object_iter_next (&iter, &name, &node)) {
		if (!g_strv_contains (allowed, name)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Unknown field '%s%s'"), context != NULL ? context : "", name);
			return FALSE;
		}
	}
	return TRUE;
}

static JsonNode *
ppn_json_member (JsonObject *obj, const gchar *member, gboolean required, GError **error)
{
	JsonNode *node = json_object_get_member (obj, member);

	if (node == NULL) {
		if (required)
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field '%s' is required"), member);
		return NULL;
	}
	/* null is a wrong type, not a way to ask for the default */
	if (JSON_NODE_HOLDS_NULL (node)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must not be null; leave it out for the default"), member);
		return NULL;
	}
	return node;
}

gboolean
ppn_json_get_string (JsonObject *obj,
		     const gchar *member,
		     gboolean required,
		     const gchar **out,
		     GError **error)
{
	g_autoptr(GError) local = NULL;
	JsonNode *node = ppn_json_member (obj, member, required, &local);

	if (node == NULL) {
		if (local != NULL) {
			g_propagate_error (error, g_steal_pointer (&local));
			return FALSE;
		}
		*out = NULL;
		return TRUE;
	}
	if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be a string"), member);
		return FALSE;
	}
	*out = json_node_get_string (node);
	return TRUE;
}

gboolean
ppn_json_get_int (JsonObject *obj,
		  const gchar *member,
		  gboolean required,
		  gint64 min,
		  gint64 max,
		  gint64 *out,
		  GError **error)
{
	g_autoptr(GError) local = NULL;
	JsonNode *node = ppn_json_member (obj, member, required, &local);
	gint64 v;

	if (node == NULL) {
		if (local != NULL) {
			g_propagate_error (error, g_steal_pointer (&local));
			return FALSE;
		}
		return TRUE; /* *out keeps its default */
	}
	/* json-glib gives doubles for 2.5, 1e400 and integers beyond int64 */
	if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be a whole number from %" G_GINT64_FORMAT
			       " to %" G_GINT64_FORMAT),
			     member, min, max);
		return FALSE;
	}
	v = json_node_get_int (node);
	if (v < min || v > max) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
			       ", got %" G_GINT64_FORMAT),
			     member, min, max, v);
		return FALSE;
	}
	*out = v;
	return TRUE;
}

gboolean
ppn_json_get_array (JsonObject *obj,
		    const gchar *member,
		    gboolean required,
		    JsonArray **out,
		    GError **error)
{
	g_autoptr(GError) local = NULL;
	JsonNode *node = ppn_json_member (obj, member, required, &local);

	if (node == NULL) {
		if (local != NULL) {
			g_propagate_error (error, g_steal_pointer (&local));
			return FALSE;
		}
		*out = NULL;
		return TRUE;
	}
	if (!JSON_NODE_HOLDS_ARRAY (node)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be an array"), member);
		return FALSE;
	}
	*out = json_node_get_array (node);
	return TRUE;
}

gchar *
ppn_json_to_data (JsonNode *node, gsize *len)
{
	g_autoptr(JsonGenerator) gen = json_generator_new ();

	json_generator_set_root (gen, node);
	return json_generator_to_data (gen, len);
}

/* RFC 3339, UTC, second precision */
gchar *
ppn_json_format_time (gint64 unix_usec)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (unix_usec / G_USEC_PER_SEC);

	if (dt == NULL)
		return g_strdup ("1970-01-01T00:00:00Z");
	return g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ");
}
