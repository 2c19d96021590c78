#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <errno.h>
#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <string.h>

#include "ppn-agent-cleanup.h"
#include "ppn-domain-manager-private.h"
#include "ppn-domain-manager.h"
#include "ppn-domain-xml.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-port-allocator.h"

/* a QEMU hostfwd bind failure says this; another port is worth a try */
#define PPN_HOSTFWD_FAILURE "host forwarding rule"
#define PPN_CREATE_ATTEMPTS 3
/* a libvirtd that is down is asked again after 1 s, 2 s, 4 s ... at most this */
#define PPN_RECONNECT_BACKOFF_MAX 30

struct _PpnDomainManager {
	GObject parent_instance;

	gchar *uri;
	gchar *node_id;
	gchar *state_dir;
	gchar *console_dir;
	gchar *disk_dir;
	PpnAccel accel_config;
	PpnEgress egress; /* the node's policy */
	guint capacity_vcpus; /* configured; 0: what libvirt counts */
	guint capacity_memory_mib;
	PpnPortAllocator *ports;

	GMutex lock; /* guards everything below */
	virConnect *conn;
	PpnAccel accel;
	guint host_vcpus; /* what libvirt counts on the host; 0 until started */
	guint host_memory_mib;
	GHashTable *busy; /* vm ids with a create or destroy running */
	guint generation; /* bumped by every create and destroy */
	GHashTable *warned; /* domain names whose bad metadata was logged */
	gboolean degraded; /* libvirt is unreachable; logged once each way */
	gboolean rediscover; /* a connection was lost: list the domains before a create */
	guint backoff; /* seconds to wait after the next failed attempt */
	gint64 next_attempt; /* monotonic time before which nobody connects */
	gchar *unreachable; /* why the last attempt failed */
};

G_DEFINE_TYPE (PpnDomainManager, ppn_domain_manager, G_TYPE_OBJECT)

/* ---- values ------------------------------------------------------------ */

PpnDomainRequest *
ppn_domain_request_new (void)
{
	PpnDomainRequest *req = g_new0 (PpnDomainRequest, 1);

	req->vcpus = 1;
	req->memory_mib = 256;
	req->egress = PPN_EGRESS_NAT;
	req->forwards = ppn_forwards_new ();
	return req;
}

PpnDomainRequest *
ppn_domain_request_copy (const PpnDomainRequest *req)
{
	PpnDomainRequest *copy;

	g_return_val_if_fail (req != NULL, NULL);
	copy = g_new0 (PpnDomainRequest, 1);
	copy->vm_id = g_strdup (req->vm_id);
	copy->tenant = g_strdup (req->tenant);
	copy->name = g_strdup (req->name);
	copy->image = g_strdup (req->image);
	copy->vcpus = req->vcpus;
	copy->memory_mib = req->memory_mib;
	copy->egress = req->egress;
	copy->forwards = ppn_forwards_copy (req->forwards);
	return copy;
}

void
ppn_domain_request_free (PpnDomainRequest *req)
{
	if (req == NULL)
		return;
	g_free (req->vm_id);
	g_free (req->tenant);
	g_free (req->name);
	g_free (req->image);
	g_clear_pointer (&req->forwards, g_ptr_array_unref);
	g_free (req);
}

void
ppn_domain_info_free (PpnDomainInfo *info)
{
	if (info == NULL)
		return;
	g_free (info->vm_id);
	g_free (info->domain);
	g_free (info->tenant);
	g_free (info->name);
	g_free (info->image);
	g_free (info->state);
	g_free (info->egress);
	g_clear_pointer (&info->forwards, g_ptr_array_unref);
	g_free (info);
}

/* the heartbeat's and GET /agent/v1/domains' form of a domain */
JsonNode *
ppn_domain_info_to_json (const PpnDomainInfo *info)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();

	g_return_val_if_fail (info != NULL, NULL);
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "vm_id");
	json_builder_add_string_value (b, info->vm_id);
	json_builder_set_member_name (b, "tenant");
	json_builder_add_string_value (b, info->tenant);
	json_builder_set_member_name (b, "name");
	json_builder_add_string_value (b, info->name);
	json_builder_set_member_name (b, "image");
	json_builder_add_string_value (b, info->image);
	json_builder_set_member_name (b, "vcpus");
	json_builder_add_int_value (b, info->vcpus);
	json_builder_set_member_name (b, "memory_mib");
	json_builder_add_int_value (b, info->memory_mib);
	json_builder_set_member_name (b, "state");
	json_builder_add_string_value (b, info->state);
	json_builder_set_member_name (b, "egress");
	json_builder_add_string_value (b, info->egress);
	json_builder_set_member_name (b, "port_forwards");
	json_builder_add_value (b, ppn_forwards_to_json (info->forwards, TRUE));
	json_builder_end_object (b);
	return json_builder_get_root (b);
}

/* ---- libvirt ----------------------------------------------------------- */

static void
ppn_virt_error_func (void *user_data, virErrorPtr err)
{
	/* errors are read with virGetLastError() where they happen */
}

static gpointer
ppn_virt_init_once (gpointer data)
{
	if (virInitialize () < 0)
		return GINT_TO_POINTER (FALSE);
	virSetErrorFunc (NULL, ppn_virt_error_func);
	return GINT_TO_POINTER (TRUE);
}

static gboolean
ppn_virt_init (GError **error)
{
	static GOnce once = G_ONCE_INIT;

	if (!GPOINTER_TO_INT (g_once (&once, ppn_virt_init_once, NULL))) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("Cannot initialize libvirt"));
		return FALSE;
	}
	return TRUE;
}

static PpnError
ppn_virt_error_code (virErrorPtr err)
{
	if (err == NULL)
		return PPN_ERROR_UNAVAILABLE;
	switch (err->code) {
	case VIR_ERR_NO_DOMAIN:
		return PPN_ERROR_NOT_FOUND;
	case VIR_ERR_DOM_EXIST:
		return PPN_ERROR_CONFLICT;
	case VIR_ERR_OPERATION_FAILED:
		if (err->message != NULL && strstr (err->message, "already exists") != NULL)
			return PPN_ERROR_CONFLICT;
		return PPN_ERROR_UNAVAILABLE;
	default:
		return PPN_ERROR_UNAVAILABLE;
	}
}

/* libvirt keeps its last error per thread: call this in the thread that
 * made the failing call */
static void
ppn_virt_set_error (GError **error)
{
	virErrorPtr err = virGetLastError ();

	g_set_error (error, PPN_ERROR, ppn_virt_error_code (err), _("libvirt: %s"),
		     err != NULL && err->message != NULL ? err->message : _("unknown error"));
	virResetLastError ();
}

/* called with the lock held: libvirt cannot be reached, say so once */
static void
ppn_domain_manager_set_unreachable (PpnDomainManager *self, const gchar *why)
{
	g_free (self->unreachable);
	self->unreachable = g_strdup (why);
	if (!self->degraded)
		g_warning (_("libvirt at %s is unreachable: %s; degraded"), self->uri, why);
	self->degraded = TRUE;
}

/* a new reference to a live connection: opened on first use, and opened
 * again when libvirtd went away (a restart of it must not need one of us),
 * though not more often than the backoff allows: meanwhile every call
 * fails at once, before it has touched anything */
static virConnect *
ppn_domain_manager_get_conn (PpnDomainManager *self, GError **error)
{
	g_autoptr(GMutexLocker) locker = NULL;
	unsigned long version = 0;
	gint64 now;

	if (!ppn_virt_init (error))
		return NULL;
	locker = g_mutex_locker_new (&self->lock);
	if (self->conn != NULL &&
	    (virConnectIsAlive (self->conn) != 1 || virConnectGetLibVersion (self->conn, &version) < 0)) {
		virErrorPtr err = virGetLastError ();
		g_autofree gchar *why = g_strdup (err != NULL && err->message != NULL ? err->message
										   : _("the connection was closed"));

		g_message (_("The connection to %s was lost; reconnecting"), self->uri);
		virResetLastError ();
		g_clear_pointer (&self->conn, virConnectClose);
		/* libvirtd may have lost or gained domains while we were away */
		self->rediscover = TRUE;
		self->next_attempt = 0;
		ppn_domain_manager_set_unreachable (self, why);
	}
	if (self->conn == NULL) {
		now = g_get_monotonic_time ();
		if (now < self->next_attempt) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
				     _("libvirt at %s is unreachable: %s (next attempt in %u s)"), self->uri,
				     self->unreachable,
				     (guint)((self->next_attempt - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC));
			return NULL;
		}
		self->conn = virConnectOpen (self->uri);
		if (self->conn == NULL) {
			virErrorPtr err = virGetLastError ();
			guint wait = self->backoff;

			ppn_domain_manager_set_unreachable (self, err != NULL && err->message != NULL
									  ? err->message
									  : _("unknown error"));
			virResetLastError ();
			self->next_attempt = now + (gint64)wait * G_USEC_PER_SEC;
			self->backoff = MIN (wait * 2, PPN_RECONNECT_BACKOFF_MAX);
			g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
				     _("libvirt at %s is unreachable: %s (next attempt in %u s)"), self->uri,
				     self->unreachable, wait);
			return NULL;
		}
		self->backoff = 1;
		self->next_attempt = 0;
		if (self->degraded)
			g_message (_("libvirt is back: %s answers again"), self->uri);
		self->degraded = FALSE;
	}
	virConnectRef (self->conn);
	return self->conn;
}

static const gchar *
ppn_domain_state_to_string (int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return "running";
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return "paused";
	case VIR_DOMAIN_SHUTDOWN:
		return "stopping";
	case VIR_DOMAIN_SHUTOFF:
		return "stopped";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	default:
		return "unknown";
	}
}

/* ---- busy vm ids ------------------------------------------------------- */

static gboolean
ppn_domain_manager_claim (PpnDomainManager *self, const gchar *vm_id, GError **error)
{
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	if (g_hash_table_contains (self->busy, vm_id)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT,
			     _("VM %s is being created or destroyed"), vm_id);
		return FALSE;
	}
	g_hash_table_add (self->busy, g_strdup (vm_id));
	self->generation++;
	return TRUE;
}

static void
ppn_domain_manager_unclaim (PpnDomainManager *self, const gchar *vm_id)
{
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	g_hash_table_remove (self->busy, vm_id);
	self->generation++;
}

/* ---- per-VM files ------------------------------------------------------ */

static gchar *
ppn_domain_manager_console_path (PpnDomainManager *self, const gchar *vm_id)
{
	g_autofree gchar *base = g_strdup_printf (PPN_DOMAIN_PREFIX "%s.log", vm_id);
	return g_build_filename (self->console_dir, base, NULL);
}

static gchar *
ppn_domain_manager_overlay_path (PpnDomainManager *self, const gchar *vm_id)
{
	g_autofree gchar *base = g_strdup_printf (PPN_DOMAIN_PREFIX "%s.qcow2", vm_id);
	return g_build_filename (self->disk_dir, base, NULL);
}

static void
ppn_domain_manager_remove_files (PpnDomainManager *self, const gchar *vm_id)
{
	g_autofree gchar *console = ppn_domain_manager_console_path (self, vm_id);
	g_autofree gchar *overlay = ppn_domain_manager_overlay_path (self, vm_id);

	if (g_unlink (console) != 0 && errno != ENOENT)
		g_warning (_("Cannot remove %s: %s"), console, g_strerror (errno));
	if (g_unlink (overlay) != 0 && errno != ENOENT)
		g_warning (_("Cannot remove %s: %s"), overlay, g_strerror (errno));
}

static gboolean
ppn_domain_manager_make_overlay (const gchar *backing, const gchar *overlay, GError **error)
{
	const gchar *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, overlay, NULL};
	g_autofree gchar *err_out = NULL;
	gint status = 0;

	if (!g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
			   NULL, NULL, NULL, &err_out, &status, error)) {
		g_prefix_error (error, _("Cannot run qemu-img: "));
		ppn_error_convert (error);
		(*error)->code = PPN_ERROR_UNAVAILABLE;
		return FALSE;
	}
	if (!g_spawn_check_wait_status (status, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("qemu-img cannot create %s: %s"),
			     overlay, err_out != NULL ? g_strstrip (err_out) : "");
		return FALSE;
	}
	return TRUE;
}

/* ---- list -------------------------------------------------------------- */

static PpnDomainInfo *
ppn_domain_manager_read_domain (PpnDomainManager *self, virDomain *dom)
{
	const gchar *name = virDomainGetName (dom);
	g_autofree gchar *xml = NULL;
	g_autoptr(PpnDomainMetadata) meta = NULL;
	g_autoptr(GError) error = NULL;
	PpnDomainInfo *info;
	virDomainInfo dominfo;
	int state = VIR_DOMAIN_NOSTATE, reason = 0;

	if (name == NULL || !g_str_has_prefix (name, PPN_DOMAIN_PREFIX))
		return NULL;
	xml = virDomainGetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, PPN_XMLNS_VM, 0);
	if (xml == NULL) {
		virErrorPtr err = virGetLastError ();
		/* destroyed since it was listed: nothing to report */
		if (err != NULL && err->code == VIR_ERR_NO_DOMAIN) {
			virResetLastError ();
			return NULL;
		}
		ppn_virt_set_error (&error);
	} else {
		meta = ppn_domain_metadata_parse (xml, &error);
		if (meta != NULL && g_strcmp0 (meta->vm_id, name + strlen (PPN_DOMAIN_PREFIX)) != 0) {
			g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_INTERNAL,
					     _("The metadata names another VM id than the domain name"));
			g_clear_pointer (&meta, ppn_domain_metadata_free);
		}
	}
	if (meta == NULL) {
		g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
		if (g_hash_table_add (self->warned, g_strdup (name)))
			g_warning (_("Ignoring domain %s: %s"), name, error->message);
		return NULL;
	}
	/* another agent's domain on a shared libvirt (test setups run several
	 * nodes on one host): neither reported nor destroyed by this one */
	if (meta->node != NULL && g_strcmp0 (meta->node, self->node_id) != 0) {
		g_debug ("domain %s belongs to node %s", name, meta->node);
		return NULL;
	}
	if (virDomainGetState (dom, &state, &reason, 0) < 0)
		virResetLastError ();
	if (virDomainGetInfo (dom, &dominfo) < 0) {
		virResetLastError ();
		memset (&dominfo, 0, sizeof dominfo);
	}

	info = g_new0 (PpnDomainInfo, 1);
	info->vm_id = g_steal_pointer (&meta->vm_id);
	info->domain = g_strdup (name);
	info->tenant = g_steal_pointer (&meta->tenant);
	info->name = g_steal_pointer (&meta->name);
	info->image = g_steal_pointer (&meta->image);
	info->state = g_strdup (ppn_domain_state_to_string (state));
	info->egress = g_steal_pointer (&meta->egress);
	info->vcpus = dominfo.nrVirtCpu;
	info->memory_mib = (guint)(dominfo.maxMem / 1024);
	info->forwards = g_steal_pointer (&meta->forwards);
	return info;
}

static GPtrArray *
ppn_domain_manager_list_sync (PpnDomainManager *self, GError **error)
{
	g_autoptr(virConnect) conn = NULL;
	g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_domain_info_free);
	g_autoptr(GHashTable) present = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	virDomainPtr *doms = NULL;
	GHashTableIter iter;
	gpointer key;
	int n;

	conn = ppn_domain_manager_get_conn (self, error);
	if (conn == NULL)
		return NULL;
	n = virConnectListAllDomains (conn, &doms, 0);
	if (n < 0) {
		ppn_virt_set_error (error);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		PpnDomainInfo *info = ppn_domain_manager_read_domain (self, doms[i]);
		const gchar *name = virDomainGetName (doms[i]);
		if (info != NULL)
			g_ptr_array_add (infos, info);
		if (name != NULL)
			g_hash_table_add (present, g_strdup (name));
		virDomainFree (doms[i]);
	}
	free (doms);
	/* forget the warnings about domains that are gone */
	g_mutex_lock (&self->lock);
	g_hash_table_iter_init (&iter, self->warned);
	while (g_hash_table_iter_next (&iter, &key, NULL)) {
		if (!g_hash_table_contains (present, key))
			g_hash_table_iter_remove (&iter);
	}
	g_mutex_unlock (&self->lock);
	return g_steal_pointer (&infos);
}

/* ports we handed out whose domain is gone (it powered off, or crashed)
 * go back to the pool, unless a create or destroy ran meanwhile */
static void
ppn_domain_manager_reconcile_ports (PpnDomainManager *self, GPtrArray *infos, guint generation)
{
	g_autoptr(GHashTable) live = g_hash_table_new (NULL, NULL);
	g_autoptr(GMutexLocker) locker = NULL;
	guint released;

	for (guint i = 0; i < infos->len; i++) {
		PpnDomainInfo *info = g_ptr_array_index (infos, i);
		for (guint j = 0; j < info->forwards->len; j++) {
			PpnForward *fwd = g_ptr_array_index (info->forwards, j);
			g_hash_table_add (live, GUINT_TO_POINTER ((guint)fwd->host_port));
		}
	}
	locker = g_mutex_locker_new (&self->lock);
	if (self->generation != generation || g_hash_table_size (self->busy) > 0)
		return;
	released = ppn_port_allocator_reset (self->ports, live);
	if (released > 0)
		g_message (_("%u host ports were held by domains that are gone; released"), released);
}

static void
ppn_domain_manager_list_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	PpnDomainManager *self = source;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	guint generation;

	g_mutex_lock (&self->lock);
	generation = self->generation;
	g_mutex_unlock (&self->lock);

	infos = ppn_domain_manager_list_sync (self, &error);
	if (infos == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	ppn_domain_manager_reconcile_ports (self, infos, generation);
	g_task_return_pointer (task, g_steal_pointer (&infos), (GDestroyNotify)g_ptr_array_unref);
}

void
ppn_domain_manager_list_async (PpnDomainManager *self,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data)
{
	g_autoptr(GTask) task = NULL;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	task = g_task_new (self, cancellable, callback, user_data);
	g_task_set_source_tag (task, ppn_domain_manager_list_async);
	g_task_run_in_thread (task, ppn_domain_manager_list_thread);
}

GPtrArray *
ppn_domain_manager_list_finish (PpnDomainManager *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- start: connect, pick the accelerator, find our live domains ------- */

static PpnAccel
ppn_domain_manager_detect_accel (virConnect *conn)
{
	g_autofree gchar *caps = virConnectGetDomainCapabilities (conn, NULL, "x86_64", "pc", "kvm", 0);

	if (caps == NULL) {
		virErrorPtr err = virGetLastError ();
		g_message (_("KVM is not available (%s); guests use TCG"),
			   err != NULL && err->message != NULL ? err->message : _("unknown error"));
		virResetLastError ();
		return PPN_ACCEL_TCG;
	}
	g_message (_("libvirt supports the kvm virt type; guests use KVM"));
	return PPN_ACCEL_KVM;
}

/* list the live ppn- domains and mark their host ports used; done at
 * start and after every lost connection, before a create may run */
static gboolean
ppn_domain_manager_rediscover (PpnDomainManager *self, GError **error)
{
	g_autoptr(GPtrArray) infos = NULL;
	guint ports = 0;

	infos = ppn_domain_manager_list_sync (self, error);
	if (infos == NULL)
		return FALSE;
	for (guint i = 0; i < infos->len; i++) {
		PpnDomainInfo *info = g_ptr_array_index (infos, i);
		for (guint j = 0; j < info->forwards->len; j++) {
			PpnForward *fwd = g_ptr_array_index (info->forwards, j);
			if (ppn_port_allocator_mark_used (self->ports, fwd->host_port))
				ports++;
		}
	}
	g_message (_("Found %u ppn domains holding %u host ports on %s"), infos->len, ports, self->uri);
	g_mutex_lock (&self->lock);
	self->rediscover = FALSE;
	g_mutex_unlock (&self->lock);
	return TRUE;
}

/* the host's CPUs and memory as libvirt counts them: what the node offers
 * unless capacity-vcpus and capacity-memory-mib say less (or more) */
static gboolean
ppn_domain_manager_read_host (PpnDomainManager *self, virConnect *conn, GError **error)
{
	virNodeInfo info;
	guint vcpus, memory_mib;

	if (virNodeGetInfo (conn, &info) != 0) {
		virErrorPtr err = virGetLastError ();
		g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
			     _("Cannot read the host's CPUs and memory from %s: %s"), self->uri,
			     err != NULL && err->message != NULL ? err->message : _("unknown error"));
		virResetLastError ();
		return FALSE;
	}
	vcpus = MAX (info.cpus, 1);
	memory_mib = (guint)MIN (info.memory / 1024, (unsigned long)G_MAXINT32);
	g_message (_("The node offers %u vCPUs and %u MiB (the host has %u and %u)"),
		   self->capacity_vcpus != 0 ? self->capacity_vcpus : vcpus,
		   self->capacity_memory_mib != 0 ? self->capacity_memory_mib : memory_mib, vcpus, memory_mib);
	g_mutex_lock (&self->lock);
	self->host_vcpus = vcpus;
	self->host_memory_mib = memory_mib;
	g_mutex_unlock (&self->lock);
	return TRUE;
}

static void
ppn_domain_manager_start_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	PpnDomainManager *self = source;
	g_autoptr(GError) error = NULL;
	g_autoptr(virConnect) conn = NULL;
	PpnAccel accel = self->accel_config;

	conn = ppn_domain_manager_get_conn (self, &error);
	if (conn == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	if (!ppn_domain_manager_read_host (self, conn, &error)) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	if (accel == PPN_ACCEL_AUTO)
		accel = ppn_domain_manager_detect_accel (conn);
	else
		g_message (_("accel = %s, as configured"), ppn_accel_to_string (accel));

	/* a restarted agent must never hand out a live VM's port again */
	if (!ppn_domain_manager_rediscover (self, &error)) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}

	g_mutex_lock (&self->lock);
	self->accel = accel;
	g_mutex_unlock (&self->lock);
	g_task_return_boolean (task, TRUE);
}

void
ppn_domain_manager_start_async (PpnDomainManager *self,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_autoptr(GTask) task = NULL;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	task = g_task_new (self, cancellable, callback, user_data);
	g_task_set_source_tag (task, ppn_domain_manager_start_async);
	g_task_run_in_thread (task, ppn_domain_manager_start_thread);
}

gboolean
ppn_domain_manager_start_finish (PpnDomainManager *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* "kvm" or "tcg"; NULL until started */
const gchar *
ppn_domain_manager_get_accel (PpnDomainManager *self)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (PPN_IS_DOMAIN_MANAGER (self), NULL);
	locker = g_mutex_locker_new (&self->lock);
	if (self->accel == PPN_ACCEL_AUTO)
		return NULL;
	return ppn_accel_to_string (self->accel);
}

/* TRUE while libvirt cannot be reached */
gboolean
ppn_domain_manager_is_degraded (PpnDomainManager *self)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (PPN_IS_DOMAIN_MANAGER (self), FALSE);
	locker = g_mutex_locker_new (&self->lock);
	return self->degraded;
}

/* what the node offers to ppn in total: the configured figures, else the
 * host's as libvirt counts them (0 until started) */
void
ppn_domain_manager_get_capacity (PpnDomainManager *self, guint *vcpus, guint *memory_mib)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	locker = g_mutex_locker_new (&self->lock);
	if (vcpus != NULL)
		*vcpus = self->capacity_vcpus != 0 ? self->capacity_vcpus : self->host_vcpus;
	if (memory_mib != NULL)
		*memory_mib = self->capacity_memory_mib != 0 ? self->capacity_memory_mib : self->host_memory_mib;
}

guint
ppn_domain_manager_count_free_ports (PpnDomainManager *self)
{
	g_return_val_if_fail (PPN_IS_DOMAIN_MANAGER (self), 0);
	return ppn_port_allocator_count_free (self->ports);
}

/* ---- create ------------------------------------------------------------ */

typedef struct {
	PpnDomainRequest *request;
	PpnImage *image;
	gchar *created;
} PpnCreateData;

static void
ppn_create_data_free (PpnCreateData *data)
{
	ppn_domain_request_free (data->request);
	ppn_image_free (data->image);
	g_free (data->created);
	g_free (data);
}

static void
ppn_domain_manager_release_forwards (PpnDomainManager *self, GPtrArray *forwards)
{
	for (guint i = 0; forwards != NULL && i < forwards->len; i++) {
		PpnForward *fwd = g_ptr_array_index (forwards, i);
		if (fwd->host_port != 0)
			ppn_port_allocator_release (self->ports, fwd->host_port);
	}
}

/* host ports for every forward, or none at all */
static GPtrArray *
ppn_domain_manager_allocate_forwards (PpnDomainManager *self, GPtrArray *wanted, GError **error)
{
	g_autoptr(GPtrArray) forwards = ppn_forwards_new ();

	for (guint i = 0; i < wanted->len; i++) {
		g_autoptr(PpnForward) fwd = ppn_forward_copy (g_ptr_array_index (wanted, i));
		guint16 port = 0;

		if (!ppn_port_allocator_allocate (self->ports, fwd->proto, &port, error)) {
			ppn_domain_manager_release_forwards (self, forwards);
			return NULL;
		}
		g_free (fwd->host_address);
		fwd->host_address = g_strdup (ppn_port_allocator_get_address (self->ports));
		fwd->host_port = port;
		g_ptr_array_add (forwards, g_steal_pointer (&fwd));
	}
	return g_steal_pointer (&forwards);
}

static PpnDomainSpec *
ppn_domain_manager_make_spec (PpnDomainManager *self, PpnCreateData *data, const gchar *overlay)
{
	PpnDomainSpec *spec = ppn_domain_spec_new ();
	const PpnDomainRequest *req = data->request;

	spec->vm_id = g_strdup (req->vm_id);
	spec->tenant = g_strdup (req->tenant);
	spec->name = g_strdup (req->name);
	spec->image = g_strdup (data->image->name);
	spec->node = g_strdup (self->node_id);
	spec->created = g_strdup (data->created);
	spec->accel = g_strdup (ppn_domain_manager_get_accel (self));
	/* either side can close the guest in; neither can open it alone */
	spec->egress = g_strdup (ppn_egress_to_string (self->egress == PPN_EGRESS_NONE ? PPN_EGRESS_NONE
										     : req->egress));
	spec->vcpus = req->vcpus;
	spec->memory_mib = req->memory_mib;
	spec->kernel = g_strdup (data->image->kernel);
	spec->initrd = g_strdup (data->image->initrd);
	spec->cmdline = g_strdup (data->image->cmdline);
	spec->disk = g_strdup (overlay);
	spec->console_path = ppn_domain_manager_console_path (self, req->vm_id);
	return spec;
}

static PpnDomainInfo *
ppn_domain_manager_create_sync (PpnDomainManager *self, PpnCreateData *data, GError **error)
{
	const PpnDomainRequest *req = data->request;
	g_autofree gchar *domain_name = ppn_domain_name_for_vm_id (req->vm_id);
	g_autofree gchar *overlay = NULL;
	g_autoptr(virConnect) conn = NULL;
	g_autoptr(virDomain) existing = NULL;
	g_autoptr(GError) last = NULL;
	gboolean rediscover;

	if (ppn_domain_manager_get_accel (self) == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("The agent is still starting"));
		return NULL;
	}
	conn = ppn_domain_manager_get_conn (self, error);
	if (conn == NULL)
		return NULL;
	/* after libvirtd came back, its live domains' ports first */
	g_mutex_lock (&self->lock);
	rediscover = self->rediscover;
	g_mutex_unlock (&self->lock);
	if (rediscover && !ppn_domain_manager_rediscover (self, error))
		return NULL;
	existing = virDomainLookupByName (conn, domain_name);
	if (existing != NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT, _("Domain %s already exists"), domain_name);
		return NULL;
	}
	if (virGetLastError () != NULL && virGetLastError ()->code != VIR_ERR_NO_DOMAIN) {
		ppn_virt_set_error (error);
		return NULL;
	}
	virResetLastError ();

	if (data->image->disk != NULL) {
		overlay = ppn_domain_manager_overlay_path (self, req->vm_id);
		if (!ppn_domain_manager_make_overlay (data->image->disk, overlay, error)) {
			ppn_domain_manager_remove_files (self, req->vm_id);
			return NULL;
		}
	}

	for (guint attempt = 0; attempt < PPN_CREATE_ATTEMPTS; attempt++) {
		g_autoptr(PpnDomainSpec) spec = ppn_domain_manager_make_spec (self, data, overlay);
		g_autoptr(GPtrArray) forwards = NULL;
		g_autoptr(virDomain) dom = NULL;
		g_autofree gchar *xml = NULL;
		PpnDomainInfo *info;
		int state = VIR_DOMAIN_NOSTATE, reason = 0;

		forwards = ppn_domain_manager_allocate_forwards (self, req->forwards, error);
		if (forwards == NULL) {
			ppn_domain_manager_remove_files (self, req->vm_id);
			return NULL;
		}
		g_ptr_array_unref (spec->forwards);
		spec->forwards = ppn_forwards_copy (forwards);
		xml = ppn_domain_xml_build (spec, error);
		if (xml == NULL) {
			ppn_domain_manager_release_forwards (self, forwards);
			ppn_domain_manager_remove_files (self, req->vm_id);
			return NULL;
		}
		dom = virDomainCreateXML (conn, xml, VIR_DOMAIN_START_VALIDATE);
		if (dom == NULL) {
			virErrorPtr err = virGetLastError ();
			gboolean hostfwd = err != NULL && err->message != NULL &&
					   strstr (err->message, PPN_HOSTFWD_FAILURE) != NULL;

			g_clear_error (&last);
			ppn_virt_set_error (&last);
			ppn_domain_manager_release_forwards (self, forwards);
			if (hostfwd && attempt + 1 < PPN_CREATE_ATTEMPTS) {
				g_message (_("Creating %s: a host port was taken (%s); trying other ports"),
					   domain_name, last->message);
				continue;
			}
			break;
		}
		if (virDomainGetState (dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_RUNNING) {
			g_clear_error (&last);
			g_set_error (&last, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
				     _("Domain %s is %s after starting, not running"),
				     domain_name, ppn_domain_state_to_string (state));
			virResetLastError ();
			if (virDomainDestroy (dom) < 0)
				virResetLastError ();
			ppn_domain_manager_release_forwards (self, forwards);
			break;
		}
		info = g_new0 (PpnDomainInfo, 1);
		info->vm_id = g_strdup (req->vm_id);
		info->domain = g_strdup (domain_name);
		info->tenant = g_strdup (req->tenant);
		info->name = g_strdup (req->name);
		info->image = g_strdup (data->image->name);
		info->state = g_strdup ("running");
		info->egress = g_strdup (spec->egress);
		info->vcpus = req->vcpus;
		info->memory_mib = req->memory_mib;
		info->forwards = g_steal_pointer (&forwards);
		return info;
	}
	ppn_domain_manager_remove_files (self, req->vm_id);
	g_propagate_error (error, g_steal_pointer (&last));
	return NULL;
}

static void
ppn_domain_manager_create_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	PpnDomainManager *self = source;
	PpnCreateData *data = task_data;
	g_autoptr(GError) error = NULL;
	PpnDomainInfo *info;
	gint64 start = g_get_monotonic_time ();

	if (!ppn_domain_manager_claim (self, data->request->vm_id, &error)) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	info = ppn_domain_manager_create_sync (self, data, &error);
	ppn_domain_manager_unclaim (self, data->request->vm_id);
	if (info == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_message (_("Created domain %s for tenant %s in %.2f s"), info->domain, info->tenant,
		   (g_get_monotonic_time () - start) / (gdouble)G_USEC_PER_SEC);
	g_task_return_pointer (task, info, (GDestroyNotify)ppn_domain_info_free);
}

void
ppn_domain_manager_create_async (PpnDomainManager *self,
				 const PpnDomainRequest *request,
				 const PpnImage *image,
				 GCancellable *cancellable,
				 GAsyncReadyCallback callback,
				 gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	PpnCreateData *data;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	g_return_if_fail (request != NULL && image != NULL);
	task = g_task_new (self, cancellable, callback, user_data);
	g_task_set_source_tag (task, ppn_domain_manager_create_async);
	data = g_new0 (PpnCreateData, 1);
	data->request = ppn_domain_request_copy (request);
	data->image = ppn_image_copy (image);
	data->created = ppn_json_format_time (g_get_real_time ());
	g_task_set_task_data (task, data, (GDestroyNotify)ppn_create_data_free);
	/* a create is not undone half-way: it runs to the end, cancelled or not */
	g_task_set_check_cancellable (task, FALSE);
	g_task_run_in_thread (task, ppn_domain_manager_create_thread);
}

PpnDomainInfo *
ppn_domain_manager_create_finish (PpnDomainManager *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- destroy ----------------------------------------------------------- */

static gboolean
ppn_domain_manager_destroy_sync (PpnDomainManager *self, const gchar *vm_id, GError **error)
{
	g_autofree gchar *domain_name = ppn_domain_name_for_vm_id (vm_id);
	g_autoptr(virConnect) conn = NULL;
	g_autoptr(virDomain) dom = NULL;
	g_autoptr(PpnDomainMetadata) meta = NULL;
	g_autofree gchar *xml = NULL;

	conn = ppn_domain_manager_get_conn (self, error);
	if (conn == NULL)
		return FALSE;
	dom = virDomainLookupByName (conn, domain_name);
	if (dom == NULL) {
		virErrorPtr err = virGetLastError ();
		if (err == NULL || err->code == VIR_ERR_NO_DOMAIN) {
			virResetLastError ();
			g_set_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No domain for VM %s"), vm_id);
			return FALSE;
		}
		ppn_virt_set_error (error);
		return FALSE;
	}
	/* the ports to give back come from the domain itself */
	xml = virDomainGetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, PPN_XMLNS_VM, 0);
	if (xml != NULL) {
		g_autoptr(GError) local = NULL;
		meta = ppn_domain_metadata_parse (xml, &local);
		if (meta == NULL)
			g_warning (_("Destroying %s: %s"), domain_name, local->message);
	} else {
		virResetLastError ();
	}
	if (meta != NULL && meta->node != NULL && g_strcmp0 (meta->node, self->node_id) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND,
			     _("No domain for VM %s on node %s (it belongs to node %s)"), vm_id, self->node_id,
			     meta->node);
		return FALSE;
	}

	if (virDomainIsActive (dom) == 1 && virDomainDestroy (dom) < 0) {
		virErrorPtr err = virGetLastError ();
		/* it stopped by itself meanwhile: the outcome asked for */
		if (err == NULL || err->code != VIR_ERR_OPERATION_INVALID) {
			ppn_virt_set_error (error);
			return FALSE;
		}
	}
	virResetLastError ();
	/* ppn only makes transient domains; one someone defined goes too */
	if (virDomainIsPersistent (dom) == 1 && virDomainUndefine (dom) < 0) {
		ppn_virt_set_error (error);
		return FALSE;
	}
	virResetLastError ();
	if (meta != NULL)
		ppn_domain_manager_release_forwards (self, meta->forwards);
	ppn_domain_manager_remove_files (self, vm_id);
	g_message (_("Destroyed domain %s"), domain_name);
	return TRUE;
}

static void
ppn_domain_manager_destroy_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	PpnDomainManager *self = source;
	const gchar *vm_id = task_data;
	g_autoptr(GError) error = NULL;
	gboolean ok;

	if (!ppn_domain_manager_claim (self, vm_id, &error)) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	ok = ppn_domain_manager_destroy_sync (self, vm_id, &error);
	ppn_domain_manager_unclaim (self, vm_id);
	if (!ok) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_task_return_boolean (task, TRUE);
}

void
ppn_domain_manager_destroy_async (PpnDomainManager *self,
				  const gchar *vm_id,
				  GCancellable *cancellable,
				  GAsyncReadyCallback callback,
				  gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	g_autoptr(GError) error = NULL;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	task = g_task_new (self, cancellable, callback, user_data);
	g_task_set_source_tag (task, ppn_domain_manager_destroy_async);
	if (!ppn_vm_id_validate (vm_id, &error)) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_task_set_task_data (task, g_strdup (vm_id), g_free);
	g_task_set_check_cancellable (task, FALSE);
	g_task_run_in_thread (task, ppn_domain_manager_destroy_thread);
}

gboolean
ppn_domain_manager_destroy_finish (PpnDomainManager *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* ---- object ------------------------------------------------------------ */

void
ppn_domain_manager_lose_connection (PpnDomainManager *self, const gchar *uri)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_if_fail (PPN_IS_DOMAIN_MANAGER (self));
	g_return_if_fail (uri != NULL);
	locker = g_mutex_locker_new (&self->lock);
	/* as get_conn does on a dead connection; without one, the backoff
	 * already running goes on */
	if (self->conn != NULL) {
		self->rediscover = TRUE;
		self->next_attempt = 0;
	}
	g_clear_pointer (&self->conn, virConnectClose);
	g_free (self->uri);
	self->uri = g_strdup (uri);
}

static gboolean
ppn_domain_manager_make_dir (const gchar *path, GError **error)
{
	/* libvirt runs qemu as another user, which must traverse these */
	if (g_mkdir_with_parents (path, 0755) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot create %s: %s"), path,
			     g_strerror (errno));
		return FALSE;
	}
	if (g_chmod (path, 0755) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot change the mode of %s: %s"), path,
			     g_strerror (errno));
		return FALSE;
	}
	return TRUE;
}

PpnDomainManager *
ppn_domain_manager_new (const PpnAgentConfig *config, GError **error)
{
	g_autoptr(PpnDomainManager) self = NULL;

	g_return_val_if_fail (config != NULL, NULL);
	self = g_object_new (PPN_TYPE_DOMAIN_MANAGER, NULL);
	self->uri = g_strdup (config->libvirt_uri);
	self->node_id = g_strdup (config->node_id);
	self->state_dir = g_strdup (config->state_dir);
	self->console_dir = g_build_filename (config->state_dir, "console", NULL);
	self->disk_dir = g_build_filename (config->state_dir, "disks", NULL);
	self->accel_config = config->accel;
	self->egress = config->egress;
	self->capacity_vcpus = config->capacity_vcpus;
	self->capacity_memory_mib = config->capacity_memory_mib;
	self->ports = ppn_port_allocator_new (config->forward_address, config->port_first, config->port_last, error);
	if (self->ports == NULL)
		return NULL;
	if (!ppn_domain_manager_make_dir (self->state_dir, error) ||
	    !ppn_domain_manager_make_dir (self->console_dir, error) ||
	    !ppn_domain_manager_make_dir (self->disk_dir, error))
		return NULL;
	return g_steal_pointer (&self);
}

static void
ppn_domain_manager_finalize (GObject *object)
{
	PpnDomainManager *self = PPN_DOMAIN_MANAGER (object);

	g_clear_pointer (&self->conn, virConnectClose);
	g_clear_pointer (&self->ports, ppn_port_allocator_free);
	g_hash_table_unref (self->busy);
	g_hash_table_unref (self->warned);
	g_mutex_clear (&self->lock);
	g_free (self->uri);
	g_free (self->node_id);
	g_free (self->state_dir);
	g_free (self->console_dir);
	g_free (self->disk_dir);
	g_free (self->unreachable);
	G_OBJECT_CLASS (ppn_domain_manager_parent_class)->finalize (object);
}

static void
ppn_domain_manager_class_init (PpnDomainManagerClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_domain_manager_finalize;
}

static void
ppn_domain_manager_init (PpnDomainManager *self)
{
	g_mutex_init (&self->lock);
	self->accel = PPN_ACCEL_AUTO;
	self->backoff = 1;
	self->busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	self->warned = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}
