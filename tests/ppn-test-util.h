#pragma once

/* libppntest: a whole fleet for a test: a CA and certificates, two
 * tenants with known tokens, ppn-fleetd and ppn-agentd started from the
 * build tree on ephemeral loopback ports, and a client for the API. */

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "ppn-tls.h"

G_BEGIN_DECLS

typedef struct {
	const gchar *libvirt_uri; /* test:///default or qemu:///system */
	gboolean real_guest;	  /* build the test guest (else a fake catalog) */
	guint max_vms;
	guint agent_count;	  /* agents ppn_test_fleet_start() starts: 0 or 1 = one */
	const gchar *token1;	  /* alice's token, or NULL for a random one */
	guint node_timeout;	  /* seconds, 0 = 15 */
	guint lost_grace;	  /* seconds, 0 = 30 */
	const gchar *fleet_extra; /* more lines for [fleet], or NULL */
	const gchar *agent_extra; /* more lines for every agent's [agent], or NULL */
	guint capacity_vcpus;	  /* each agent's, 0 = 64 */
} PpnTestFleetOptions;

/* an agent beyond the fleet's first one (whose fields are the fleet's
 * own): a node id, a certificate, a listen port, a host port range and a
 * state folder of its own; its files are NAMEd.conf and NAMEd.log */
typedef struct {
	gchar *name;
	gchar *node_id;
	gchar *url; /* once it listens */
	guint16 port_first;
	guint16 port_last;
	GSubprocess *agentd;
} PpnTestAgent;

typedef struct {
	gchar *dir;
	gchar *ca_dir;
	gchar *image_dir;
	gchar *fleet_conf;
	gchar *token1;
	gchar *token2;
	gchar *node_id;
	gchar *libvirt_uri;
	gchar *url;
	gchar *agent_url;
	guint16 tenant_port;
	guint16 mesh_port;
	guint16 agent_port;
	guint16 port_first;
	guint16 port_last;
	GSubprocess *fleetd;
	GSubprocess *agentd;
	GPtrArray *agents; /* of PpnTestAgent: the agents beyond the first */
	SoupSession *session;
	PpnTestFleetOptions opts;
	gint64 last_receipt; /* Ppn-Ledger-Index of the last call's answer, -1 = none */
} PpnTestFleet;

gchar *ppn_test_build_path (const gchar *name);
gchar *ppn_test_src_path (const gchar *name);
gboolean ppn_test_libvirt_available (const gchar *uri);
gchar *ppn_test_run (const gchar *const *argv, gint *exit_status);
/* sh -c @cmd; TRUE when it exits 0 */
gboolean ppn_test_sh (const gchar *cmd);
/* rm -rf, after lifting the append-only flag (chattr +a) a ledger may have */
void ppn_test_rm_rf (const gchar *path);

PpnTestFleet *ppn_test_fleet_new (const PpnTestFleetOptions *opts, GError **error);
gboolean ppn_test_fleet_start_fleetd (PpnTestFleet *fleet, GError **error);
gboolean ppn_test_fleet_start_agentd (PpnTestFleet *fleet, GError **error);
gboolean ppn_test_fleet_wait_node (PpnTestFleet *fleet, guint timeout_seconds, GError **error);
PpnTestAgent *ppn_test_fleet_add_agent (PpnTestFleet *fleet, GError **error);
void ppn_test_agent_stop (PpnTestAgent *agent, gint signum);
gboolean ppn_test_fleet_issue (PpnTestFleet *fleet,
			       PpnTlsRole role,
			       const gchar *name,
			       gchar **cert_path,
			       gchar **key_path,
			       GError **error);
JsonNode *ppn_test_fleet_mesh_call (PpnTestFleet *fleet,
				    PpnTlsRole role,
				    const gchar *name,
				    const gchar *method,
				    const gchar *path,
				    guint *status);
/* a mesh GET's body as text (e.g. /metrics) */
gchar *ppn_test_fleet_mesh_get_text (PpnTestFleet *fleet,
				     PpnTlsRole role,
				     const gchar *name,
				     const gchar *path,
				     guint *status);
JsonObject *ppn_test_fleet_find_node (JsonNode *nodes, const gchar *node_id);
gboolean ppn_test_fleet_start (PpnTestFleet *fleet, GError **error);
PpnTestFleet *ppn_test_fleet_new_started (const PpnTestFleetOptions *opts);
void ppn_test_fleet_stop_fleetd (PpnTestFleet *fleet, gint signum);
void ppn_test_fleet_stop_agentd (PpnTestFleet *fleet, gint signum);
JsonNode *ppn_test_fleet_call (PpnTestFleet *fleet,
			       const gchar *token,
			       const gchar *method,
			       const gchar *path,
			       const gchar *body,
			       guint *status,
			       gchar **raw);
/* runs the built ppnctl against the fleet as the tenant of @token (NULL:
 * no token); returns its exit status, stdout and stderr */
gint ppn_test_fleet_ppnctl (PpnTestFleet *fleet, const gchar *token, gchar **out, gchar **err, ...)
	G_GNUC_NULL_TERMINATED;
GPtrArray *ppn_test_node_domains (PpnTestFleet *fleet);
GPtrArray *ppn_test_node_domains_on (PpnTestFleet *fleet, const gchar *node_id);
guint ppn_test_node_domains_of (PpnTestFleet *fleet, const gchar *tenant);
gchar *ppn_test_http_get (guint16 port, GError **error);
guint16 ppn_test_free_port_range (guint count);
JsonNode *ppn_test_agent_call (PpnTestFleet *fleet, const gchar *method, const gchar *path, const gchar *body,
			       guint *status);
/* @count creates of one tenant fired at the same instant, on @count
 * connections, from a thread of their own; join for the answers */
typedef struct {
	PpnTestFleet *fleet;
	gchar *token;
	gchar *prefix;
	guint count;
	guint done;
	guint created;
	guint quota;
	guint too_many;
	guint other;
	GPtrArray *ids; /* of the 201s */
	GThread *thread;
} PpnTestBurst;

PpnTestBurst *ppn_test_burst_start (PpnTestFleet *fleet, const gchar *token, const gchar *prefix, guint count);
gboolean ppn_test_burst_finished (PpnTestBurst *burst);
void ppn_test_burst_join (PpnTestBurst *burst);
void ppn_test_burst_free (PpnTestBurst *burst);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnTestBurst, ppn_test_burst_free)

void ppn_test_fleet_free (PpnTestFleet *fleet);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnTestFleet, ppn_test_fleet_free)

G_END_DECLS
