#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "ppn-agent-config.h"
#include "ppn-image-catalog.h"

G_BEGIN_DECLS

/* what the fleet asks for; validated by the caller and again before any
 * XML is written */
typedef struct {
	gchar *vm_id;
	gchar *tenant;
	gchar *name;
	gchar *image;
	guint vcpus;
	guint memory_mib;
	PpnEgress egress; /* what the fleet asks for; the node's none wins */
	GPtrArray *forwards; /* of PpnForward: guest_port, proto */
} PpnDomainRequest;

PpnDomainRequest *ppn_domain_request_new (void);
PpnDomainRequest *ppn_domain_request_copy (const PpnDomainRequest *req);
void ppn_domain_request_free (PpnDomainRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnDomainRequest, ppn_domain_request_free)

/* one ppn- domain as libvirt and its metadata describe it */
typedef struct {
	gchar *vm_id;
	gchar *domain;
	gchar *tenant;
	gchar *name;
	gchar *image;
	gchar *state; /* running, paused, stopping, stopped, crashed, unknown */
	gchar *egress; /* the effective policy: nat or none */
	guint vcpus;
	guint memory_mib;
	GPtrArray *forwards; /* of PpnForward, with host_address/host_port */
} PpnDomainInfo;

void ppn_domain_info_free (PpnDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnDomainInfo, ppn_domain_info_free)
JsonNode *ppn_domain_info_to_json (const PpnDomainInfo *info);

#define PPN_TYPE_DOMAIN_MANAGER (ppn_domain_manager_get_type ())
G_DECLARE_FINAL_TYPE (PpnDomainManager, ppn_domain_manager, PPN, DOMAIN_MANAGER, GObject)

PpnDomainManager *ppn_domain_manager_new (const PpnAgentConfig *config, GError **error);

void ppn_domain_manager_start_async (PpnDomainManager *self,
				     GCancellable *cancellable,
				     GAsyncReadyCallback callback,
				     gpointer user_data);
gboolean ppn_domain_manager_start_finish (PpnDomainManager *self, GAsyncResult *res, GError **error);

const gchar *ppn_domain_manager_get_accel (PpnDomainManager *self);
gboolean ppn_domain_manager_is_degraded (PpnDomainManager *self);
guint ppn_domain_manager_count_free_ports (PpnDomainManager *self);
void ppn_domain_manager_get_capacity (PpnDomainManager *self, guint *vcpus, guint *memory_mib);

void ppn_domain_manager_create_async (PpnDomainManager *self,
				      const PpnDomainRequest *request,
				      const PpnImage *image,
				      GCancellable *cancellable,
				      GAsyncReadyCallback callback,
				      gpointer user_data);
PpnDomainInfo *ppn_domain_manager_create_finish (PpnDomainManager *self, GAsyncResult *res, GError **error);

void ppn_domain_manager_destroy_async (PpnDomainManager *self,
				       const gchar *vm_id,
				       GCancellable *cancellable,
				       GAsyncReadyCallback callback,
				       gpointer user_data);
gboolean ppn_domain_manager_destroy_finish (PpnDomainManager *self, GAsyncResult *res, GError **error);

void ppn_domain_manager_list_async (PpnDomainManager *self,
				    GCancellable *cancellable,
				    GAsyncReadyCallback callback,
				    gpointer user_data);
GPtrArray *ppn_domain_manager_list_finish (PpnDomainManager *self, GAsyncResult *res, GError **error);

G_END_DECLS
