#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	PPN_ACCEL_AUTO,
	PPN_ACCEL_KVM,
	PPN_ACCEL_TCG,
} PpnAccel;

#define PPN_AGENT_LISTEN_DEFAULT "127.0.0.1:9444"
#define PPN_AGENT_LIBVIRT_URI_DEFAULT "qemu:///system"

/* the agent's configuration, as read from [agent] and [tls] */
typedef struct {
	gchar *path;
	gchar *node_id;
	gchar *listen;
	gchar *listen_host;
	guint16 listen_port;
	gchar *advertise_url; /* NULL: derived from the bound listen address */
	gchar *fleet_url;
	gchar *libvirt_uri;
	gchar *state_dir;
	gchar *image_dir;
	guint16 port_first;
	guint16 port_last;
	gchar *forward_address;
	PpnAccel accel;
	guint heartbeat_interval;
	guint max_vcpus;
	guint max_memory_mib;
	guint max_forwards;
	gchar *tls_ca;
	gchar *tls_cert;
	gchar *tls_key;
} PpnAgentConfig;

PpnAgentConfig *ppn_agent_config_load (const gchar *path, GError **error);
PpnAgentConfig *ppn_agent_config_new_from_keyfile (GKeyFile *kf, const gchar *path, GError **error);
void ppn_agent_config_free (PpnAgentConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnAgentConfig, ppn_agent_config_free)

gchar *ppn_agent_config_get_advertise_url (const PpnAgentConfig *config, guint16 bound_port);

const gchar *ppn_accel_to_string (PpnAccel accel);
gboolean ppn_accel_from_string (const gchar *str, PpnAccel *accel);

G_END_DECLS
