#include "config.h"

#define G_LOG_DOMAIN "ppn-store"

#include <errno.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-store.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

struct _PpnStore {
	GObject parent_instance;
	sqlite3 *db;
	gchar *path;
};

G_DEFINE_TYPE (PpnStore, ppn_store, G_TYPE_OBJECT)

/*
 * Schema history (PRAGMA user_version):
 *  1: vms (the VM records, state as text, forwards as JSON)
 *  2: vms.egress, the guest's outbound policy ('nat' for older records)
 */
#define PPN_STORE_SCHEMA_VERSION 2

static const gchar *const ppn_store_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE vms ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  tenant TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  image TEXT NOT NULL,"
	"  vcpus INTEGER NOT NULL,"
	"  memory_mib INTEGER NOT NULL,"
	"  state TEXT NOT NULL,"
	"  node TEXT,"
	"  port_forwards TEXT NOT NULL DEFAULT '[]',"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX vms_by_tenant ON vms (tenant, created_at);"
	"CREATE INDEX vms_by_state ON vms (state);",
	/* 1 -> 2 */
	"ALTER TABLE vms ADD COLUMN egress TEXT NOT NULL DEFAULT 'nat';",
};

static gboolean
ppn_store_fail (PpnStore *self, int rc, const gchar *what, GError **error)
{
	/* a full or read-only disk is a condition to report, not an internal bug */
	PpnError code = (rc == SQLITE_FULL || rc == SQLITE_READONLY || rc == SQLITE_BUSY ||
			 rc == SQLITE_LOCKED || rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN)
			    ? PPN_ERROR_UNAVAILABLE
			    : PPN_ERROR_INTERNAL;

	g_set_error (error, PPN_ERROR, code, _("Database %s: %s: %s"), self->path, what,
		     self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
	return FALSE;
}

static gboolean
ppn_store_exec (PpnStore *self, const gchar *sql, GError **error)
{
	int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return ppn_store_fail (self, rc, sql, error);
	return TRUE;
}

static gboolean
ppn_store_get_version (PpnStore *self, gint *version, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc = sqlite3_prepare_v2 (self->db, "PRAGMA user_version", -1, &stmt, NULL);

	if (rc != SQLITE_OK || sqlite3_step (stmt) != SQLITE_ROW)
		return ppn_store_fail (self, rc, "user_version", error);
	*version = sqlite3_column_int (stmt, 0);
	return TRUE;
}

static gboolean
ppn_store_migrate (PpnStore *self, GError **error)
{
	gint version = 0;

	if (!ppn_store_get_version (self, &version, error))
		return FALSE;
	if (version > PPN_STORE_SCHEMA_VERSION) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
			     _("Database %s has schema version %d, newer than this ppn-fleetd knows (%d)"),
			     self->path, version, PPN_STORE_SCHEMA_VERSION);
		return FALSE;
	}
	for (gint v = version; v < PPN_STORE_SCHEMA_VERSION; v++) {
		g_autofree gchar *bump = g_strdup_printf ("PRAGMA user_version = %d", v + 1);
		if (!ppn_store_exec (self, "BEGIN IMMEDIATE", error))
			return FALSE;
		if (!ppn_store_exec (self, ppn_store_migrations[v], error) ||
		    !ppn_store_exec (self, bump, error)) {
			sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
			return FALSE;
		}
		if (!ppn_store_exec (self, "COMMIT", error))
			return FALSE;
		g_info ("database %s migrated to schema version %d", self->path, v + 1);
	}
	return TRUE;
}

gboolean
ppn_store_open (PpnStore *self, const gchar *path, GError **error)
{
	int rc;

	g_return_val_if_fail (PPN_IS_STORE (self), FALSE);
	g_return_val_if_fail (self->db == NULL, FALSE);
	self->path = g_strdup (path);
	rc = sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			      NULL);
	if (rc != SQLITE_OK)
		return ppn_store_fail (self, rc, "open", error);
	sqlite3_extended_result_codes (self->db, 0);
	sqlite3_busy_timeout (self->db, 5000);
	/* WAL with synchronous=FULL: a write that was acknowledged to a tenant
	 * survives a power loss, not only a process crash */
	return ppn_store_exec (self, "PRAGMA journal_mode = WAL", error) &&
	       ppn_store_exec (self, "PRAGMA synchronous = FULL", error) &&
	       ppn_store_exec (self, "PRAGMA foreign_keys = ON", error) &&
	       ppn_store_migrate (self, error);
}

static gboolean
ppn_store_bind_vm (PpnStore *self, sqlite3_stmt *stmt, const PpnVm *vm, GError **error)
{
	g_autoptr(JsonNode) fwd = ppn_forwards_to_json (vm->forwards, TRUE);
	g_autofree gchar *fwd_json = ppn_json_to_data (fwd, NULL);

	if (sqlite3_bind_text (stmt, 1, vm->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 2, vm->tenant, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 3, vm->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 4, vm->image, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int (stmt, 5, (int)vm->vcpus) != SQLITE_OK ||
	    sqlite3_bind_int (stmt, 6, (int)vm->memory_mib) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 7, ppn_vm_state_to_string (vm->state), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 8, vm->node, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 9, fwd_json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64 (stmt, 10, vm->created_at) != SQLITE_OK ||
	    sqlite3_bind_int64 (stmt, 11, vm->updated_at) != SQLITE_OK ||
	    sqlite3_bind_text (stmt, 12, vm->egress, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return ppn_store_fail (self, SQLITE_ERROR, "bind", error);
	return TRUE;
}

static gboolean
ppn_store_write_vm (PpnStore *self, const gchar *sql, const PpnVm *vm, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc;

	rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return ppn_store_fail (self, rc, "prepare", error);
	if (!ppn_store_bind_vm (self, stmt, vm, error))
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc != SQLITE_DONE)
		return ppn_store_fail (self, rc, "write", error);
	if (sqlite3_changes (self->db) != 1) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Database %s: VM %s was not written"),
			     self->path, vm->id);
		return FALSE;
	}
	return TRUE;
}

/* Many writes in one transaction: one commit (and one fsync) for all of
 * them instead of one each. Nothing else may write in between. */
gboolean
ppn_store_begin (PpnStore *self, GError **error)
{
	g_return_val_if_fail (PPN_IS_STORE (self), FALSE);
	return ppn_store_exec (self, "BEGIN IMMEDIATE", error);
}

/* on failure the transaction is rolled back */
gboolean
ppn_store_commit (PpnStore *self, GError **error)
{
	g_return_val_if_fail (PPN_IS_STORE (self), FALSE);
	if (ppn_store_exec (self, "COMMIT", error))
		return TRUE;
	if (sqlite3_get_autocommit (self->db) == 0)
		sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
	return FALSE;
}

gboolean
ppn_store_insert_vm (PpnStore *self, const PpnVm *vm, GError **error)
{
	g_return_val_if_fail (PPN_IS_STORE (self), FALSE);
	return ppn_store_write_vm (self,
				   "INSERT INTO vms (id, tenant, name, image, vcpus, memory_mib, state, node,"
				   " port_forwards, created_at, updated_at, egress)"
				   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
				   vm, error);
}

/* the owner and the identity of a record never change */
gboolean
ppn_store_update_vm (PpnStore *self, const PpnVm *vm, GError **error)
{
	g_return_val_if_fail (PPN_IS_STORE (self), FALSE);
	return ppn_store_write_vm (self,
				   "UPDATE vms SET name = ?3, image = ?4, vcpus = ?5, memory_mib = ?6,"
				   " state = ?7, node = ?8, port_forwards = ?9, updated_at = ?11, egress = ?12"
				   " WHERE id = ?1 AND tenant = ?2 AND created_at = ?10",
				   vm, error);
}

static PpnVm *
ppn_store_row_to_vm (PpnStore *self, sqlite3_stmt *stmt, GError **error)
{
	g_autoptr(PpnVm) vm = ppn_vm_new ((const gchar *)sqlite3_column_text (stmt, 0),
					  (const gchar *)sqlite3_column_text (stmt, 1), NULL,
					  sqlite3_column_int64 (stmt, 9));
	const gchar *state = (const gchar *)sqlite3_column_text (stmt, 6);
	const gchar *fwd_json = (const gchar *)sqlite3_column_text (stmt, 8);
	g_autoptr(JsonParser) parser = json_parser_new_immutable ();
	JsonNode *root;

	vm->name = g_strdup ((const gchar *)sqlite3_column_text (stmt, 2));
	vm->image = g_strdup ((const gchar *)sqlite3_column_text (stmt, 3));
	vm->vcpus = (guint)sqlite3_column_int (stmt, 4);
	vm->memory_mib = (guint)sqlite3_column_int (stmt, 5);
	vm->node = g_strdup ((const gchar *)sqlite3_column_text (stmt, 7));
	vm->updated_at = sqlite3_column_int64 (stmt, 10);
	g_free (vm->egress);
	vm->egress = g_strdup ((const gchar *)sqlite3_column_text (stmt, 11));
	if (!ppn_vm_state_from_string (state, &vm->state)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Database %s: VM %s has unknown state '%s'"),
			     self->path, vm->id, state);
		return NULL;
	}
	if (fwd_json != NULL && json_parser_load_from_data (parser, fwd_json, -1, NULL) &&
	    (root = json_parser_get_root (parser)) != NULL && JSON_NODE_HOLDS_ARRAY (root)) {
		JsonArray *array = json_node_get_array (root);
		gboolean with_host = json_array_get_length (array) > 0 &&
				     json_object_has_member (json_array_get_object_element (array, 0), "host_port");
		g_autoptr(GPtrArray) fwds = ppn_forwards_from_json (array, G_MAXUINT, with_host, error);
		if (fwds == NULL) {
			g_prefix_error (error, _("Database %s: VM %s: "), self->path, vm->id);
			return NULL;
		}
		g_ptr_array_unref (vm->forwards);
		vm->forwards = g_steal_pointer (&fwds);
	}
	return g_steal_pointer (&vm);
}

/* a record whatever its state; NULL without error when there is none */
PpnVm *
ppn_store_get_vm (PpnStore *self, const gchar *id, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc;

	g_return_val_if_fail (PPN_IS_STORE (self), NULL);
	rc = sqlite3_prepare_v2 (self->db,
				 "SELECT id, tenant, name, image, vcpus, memory_mib, state, node,"
				 " port_forwards, created_at, updated_at, egress FROM vms WHERE id = ?1",
				 -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		ppn_store_fail (self, rc, "prepare", error);
		return NULL;
	}
	sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step (stmt);
	if (rc == SQLITE_DONE)
		return NULL;
	if (rc != SQLITE_ROW) {
		ppn_store_fail (self, rc, "read", error);
		return NULL;
	}
	return ppn_store_row_to_vm (self, stmt, error);
}

GPtrArray *
ppn_store_load_vms (PpnStore *self, gboolean include_deleted, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_vm_unref);
	int rc;

	g_return_val_if_fail (PPN_IS_STORE (self), NULL);
	rc = sqlite3_prepare_v2 (self->db,
				 "SELECT id, tenant, name, image, vcpus, memory_mib, state, node,"
				 " port_forwards, created_at, updated_at, egress FROM vms"
				 " WHERE ?1 OR state != 'deleted' ORDER BY created_at, id",
				 -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		ppn_store_fail (self, rc, "prepare", error);
		return NULL;
	}
	sqlite3_bind_int (stmt, 1, include_deleted ? 1 : 0);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		PpnVm *vm = ppn_store_row_to_vm (self, stmt, error);
		if (vm == NULL)
			return NULL;
		g_ptr_array_add (vms, vm);
	}
	if (rc != SQLITE_DONE) {
		ppn_store_fail (self, rc, "load", error);
		return NULL;
	}
	return g_steal_pointer (&vms);
}

static void
ppn_store_finalize (GObject *object)
{
	PpnStore *self = PPN_STORE (object);

	if (self->db != NULL)
		sqlite3_close (self->db);
	g_free (self->path);
	G_OBJECT_CLASS (ppn_store_parent_class)->finalize (object);
}

static void
ppn_store_class_init (PpnStoreClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_store_finalize;
}

static void
ppn_store_init (PpnStore *self)
{
}

PpnStore *
ppn_store_new (void)
{
	return g_object_new (PPN_TYPE_STORE, NULL);
}
