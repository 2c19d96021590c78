#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	PPN_ACCEL_AUTO,
	PPN_ACCEL_KVM,
	PPN_ACCEL_TCG,
} PpnAccel;

/* what a guest may reach through its SLIRP NIC: nat, everything the host
 * can (its loopback included, as 10.0.2.2); none, nothing at all (QEMU's
 * restrict=on), while host forwards into the guest still work */
typedef enum {
	PPN_EGRESS_NAT,
	PPN_EGRESS_NONE,
} PpnEgress;

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
	PpnEgress egress;
	guint heartbeat_interval;
	guint capacity_vcpus;	   /* offered to ppn in total; 0: what libvirt counts */
	guint capacity_memory_mib; /* offered to ppn in total; 0: what libvirt counts */
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
const gchar *ppn_egress_to_string (PpnEgress egress);
gboolean ppn_egress_from_string (const gchar *str, PpnEgress *egress);

G_END_DECLS
