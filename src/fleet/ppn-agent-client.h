#pragma once

#include <gio/gio.h>

#include "ppn-vm.h"

G_BEGIN_DECLS

/* the fleet's calls to host agents: async, mutual TLS, and the answering
 * agent must hold the certificate of the node it was asked as */
#define PPN_TYPE_AGENT_CLIENT (ppn_agent_client_get_type ())
G_DECLARE_FINAL_TYPE (PpnAgentClient, ppn_agent_client, PPN, AGENT_CLIENT, GObject)

/* what an agent answers for a domain it started */
typedef struct {
	GPtrArray *forwards; /* of PpnForward, host side set */
	gchar *egress;	     /* the policy in force: the node may have made it stricter */
} PpnAgentDomain;

void ppn_agent_domain_free (PpnAgentDomain *domain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnAgentDomain, ppn_agent_domain_free)

PpnAgentClient *ppn_agent_client_new (GTlsDatabase *ca, GTlsCertificate *cert, guint timeout_seconds);
void ppn_agent_client_create_async (PpnAgentClient *self,
				    const gchar *node_id,
				    const gchar *agent_url,
				    const PpnVm *vm,
				    GCancellable *cancellable,
				    GAsyncReadyCallback callback,
				    gpointer user_data);
PpnAgentDomain *ppn_agent_client_create_finish (PpnAgentClient *self, GAsyncResult *res, GError **error);
void ppn_agent_client_destroy_async (PpnAgentClient *self,
				     const gchar *node_id,
				     const gchar *agent_url,
				     const gchar *vm_id,
				     GCancellable *cancellable,
				     GAsyncReadyCallback callback,
				     gpointer user_data);
gboolean ppn_agent_client_destroy_finish (PpnAgentClient *self, GAsyncResult *res, GError **error);

G_END_DECLS
