#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* one host port forward of a VM: guest_port/proto as the tenant asked,
 * host_address/host_port as the node gave them (0/NULL until placed) */
typedef struct {
	guint16 guest_port;
	gchar *proto; /* "tcp" or "udp" */
	gchar *host_address;
	guint16 host_port;
} PpnForward;

#define PPN_MAX_FORWARDS_DEFAULT 8
#define PPN_NAME_MAX 63

PpnForward *ppn_forward_new (guint16 guest_port, const gchar *proto);
PpnForward *ppn_forward_copy (const PpnForward *fwd);
void ppn_forward_free (PpnForward *fwd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnForward, ppn_forward_free)

GPtrArray *ppn_forwards_new (void);
GPtrArray *ppn_forwards_copy (GPtrArray *forwards);
JsonNode *ppn_forwards_to_json (GPtrArray *forwards, gboolean with_host);
GPtrArray *ppn_forwards_from_json (JsonArray *array,
				   guint max_forwards,
				   gboolean with_host,
				   GError **error);

gboolean ppn_name_validate (const gchar *what, const gchar *name, GError **error);
gboolean ppn_vm_id_validate (const gchar *id, GError **error);
gchar *ppn_vm_id_new (void);

G_END_DECLS
