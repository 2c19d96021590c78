#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

PpnForward *
ppn_forward_new (guint16 guest_port, const gchar *proto)
{
	PpnForward *fwd = g_new0 (PpnForward, 1);

	fwd->guest_port = guest_port;
	fwd->proto = g_strdup (proto);
	return fwd;
}

PpnForward *
ppn_forward_copy (const PpnForward *fwd)
{
	PpnForward *copy = ppn_forward_new (fwd->guest_port, fwd->proto);

	copy->host_address = g_strdup (fwd->host_address);
	copy->host_port = fwd->host_port;
	return copy;
}

void
ppn_forward_free (PpnForward *fwd)
{
	if (fwd == NULL)
		return;
	g_free (fwd->proto);
	g_free (fwd->host_address);
	g_free (fwd);
}

GPtrArray *
ppn_forwards_new (void)
{
	return g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_forward_free);
}

GPtrArray *
ppn_forwards_copy (GPtrArray *forwards)
{
	GPtrArray *copy = ppn_forwards_new ();

	for (guint i = 0; forwards != NULL && i < forwards->len; i++)
		g_ptr_array_add (copy, ppn_forward_copy (g_ptr_array_index (forwards, i)));
	return copy;
}

JsonNode *
ppn_forwards_to_json (GPtrArray *forwards, gboolean with_host)
{
	g_autoptr(JsonArray) array = json_array_new ();
	JsonNode *node = json_node_new (JSON_NODE_ARRAY);

	for (guint i = 0; forwards != NULL && i < forwards->len; i++) {
		PpnForward *fwd = g_ptr_array_index (forwards, i);
		JsonObject *obj = json_object_new ();

		json_object_set_int_member (obj, "guest_port", fwd->guest_port);
		json_object_set_string_member (obj, "proto", fwd->proto);
		if (with_host && fwd->host_address != NULL) {
			json_object_set_string_member (obj, "host_address", fwd->host_address);
			json_object_set_int_member (obj, "host_port", fwd->host_port);
		}
		json_array_add_object_element (array, obj);
	}
	json_node_set_array (node, array);
	return node;
}

GPtrArray *
ppn_forwards_from_json (JsonArray *array, guint max_forwards, gboolean with_host, GError **error)
{
	static const gchar *const tenant_fields[] = {"guest_port", "proto", NULL};
	static const gchar *const host_fields[] = {"guest_port", "proto", "host_address", "host_port", NULL};
	g_autoptr(GPtrArray) forwards = ppn_forwards_new ();
	guint n = array != NULL ? json_array_get_length (array) : 0;

	if (n > max_forwards) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field 'port_forwards' has %u entries, at most %u are allowed"),
			     n, max_forwards);
		return NULL;
	}
	for (guint i = 0; i < n; i++) {
		JsonNode *el = json_array_get_element (array, i);
		JsonObject *obj;
		gint64 guest_port = 0, host_port = 0;
		const gchar *proto = NULL, *host_address = NULL;
		g_autoptr(PpnForward) fwd = NULL;

		if (!JSON_NODE_HOLDS_OBJECT (el)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'port_forwards[%u]' must be an object"), i);
			return NULL;
		}
		obj = json_node_get_object (el);
		if (!ppn_json_check_members (obj, "port_forwards[].",
					     with_host ? host_fields : tenant_fields, error) ||
		    !ppn_json_get_int (obj, "guest_port", TRUE, 1, 65535, &guest_port, error) ||
		    !ppn_json_get_string (obj, "proto", FALSE, &proto, error))
			return NULL;
		if (proto == NULL)
			proto = "tcp";
		if (g_strcmp0 (proto, "tcp") != 0 && g_strcmp0 (proto, "udp") != 0) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("Field 'port_forwards[].proto' must be \"tcp\" or \"udp\""));
			return NULL;
		}
		for (guint j = 0; j < forwards->len; j++) {
			PpnForward *other = g_ptr_array_index (forwards, j);
			if (other->guest_port == guest_port && g_strcmp0 (other->proto, proto) == 0) {
				g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("Field 'port_forwards' names guest port %u/%s twice"),
					     (guint)guest_port, proto);
				return NULL;
			}
		}
		fwd = ppn_forward_new ((guint16)guest_port, proto);
		if (with_host) {
			if (!ppn_json_get_string (obj, "host_address", TRUE, &host_address, error) ||
			    !ppn_json_get_int (obj, "host_port", TRUE, 1, 65535, &host_port, error))
				return NULL;
			fwd->host_address = g_strdup (host_address);
			fwd->host_port = (guint16)host_port;
		}
		g_ptr_array_add (forwards, g_steal_pointer (&fwd));
	}
	return g_steal_pointer (&forwards);
}

/* names that reach libvirt, file names and logs: a DNS label's alphabet,
 * so no value can carry markup, a path or a control character */
gboolean
ppn_name_validate (const gchar *what, const gchar *name, GError **error)
{
	gsize len;

	if (name == NULL || name[0] == '\0') {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must not be empty"), what);
		return FALSE;
	}
	len = strlen (name);
	if (len > PPN_NAME_MAX) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' is %" G_GSIZE_FORMAT " characters long, at most %d are allowed"),
			     what, len, PPN_NAME_MAX);
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		gchar c = name[i];
		if (!(g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.')) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field '%s' may only contain letters a-z, A-Z, digits, '-', '_' and '.'"),
				     what);
			return FALSE;
		}
	}
	if (!g_ascii_isalnum (name[0])) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must start with a letter or a digit"), what);
		return FALSE;
	}
	return TRUE;
}

/* vm ids are 16 lower-case hex digits, chosen by the fleet */
gboolean
ppn_vm_id_validate (const gchar *id, GError **error)
{
	gsize len = id != NULL ? strlen (id) : 0;

	if (len != 16) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A VM id is 16 hexadecimal digits"));
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isxdigit (id[i]) || g_ascii_isupper (id[i])) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("A VM id is 16 hexadecimal digits"));
			return FALSE;
		}
	}
	return TRUE;
}

gchar *
ppn_vm_id_new (void)
{
	guint8 raw[8];
	GString *s = g_string_sized_new (17);

	if (gnutls_rnd (GNUTLS_RND_NONCE, raw, sizeof raw) != 0) {
		for (guint i = 0; i < sizeof raw; i++)
			raw[i] = (guint8)g_random_int_range (0, 256);
	}
	for (guint i = 0; i < sizeof raw; i++)
		g_string_append_printf (s, "%02x", raw[i]);
	return g_string_free (s, FALSE);
}
