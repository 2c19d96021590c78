#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "ppn-ledger.h"
#include "ppn-metrics.h"

G_BEGIN_DECLS

/* The audit trail: every lifecycle operation and every denied attempt,
 * written twice, to an append-only JSON-lines file and to the WORM ledger,
 * and on disk in both before the caller hears it was recorded. One writer
 * thread does the writing and commits what has queued up together (one
 * fsync per file per batch), so the main loop never waits on a disk.
 *
 * A record never holds a token: the tenant proxy passes the tenant it
 * authenticated (or none), never what the caller sent. */
#define PPN_TYPE_AUDIT (ppn_audit_get_type ())
G_DECLARE_FINAL_TYPE (PpnAudit, ppn_audit, PPN, AUDIT, GObject)

typedef struct {
	const gchar *op;	 /* "create", "destroy", "show", "authenticate" */
	const gchar *outcome;	 /* "requested", "success", "failure", "denied" */
	const gchar *tenant;	 /* NULL: the caller was not authenticated */
	const gchar *vm_id;	 /* nullable */
	const gchar *vm_name;	 /* nullable */
	const gchar *request_id; /* nullable */
	const gchar *error;	 /* the API error code of a failure or denial, nullable */
	/* operators' eyes only: in the audit file, never in the ledger a
	 * tenant can read (e.g. that a VM is someone else's) */
	const gchar *detail;
	const gchar *node;
	const gchar *actor; /* NULL = the tenant; "fleet" for the reconciliation */
	guint count;	    /* 0: one event; N: N alike, as one record with a "count" */
} PpnAuditEvent;

PpnAudit *ppn_audit_new (const gchar *file_path, PpnLedger *ledger, GError **error);

void ppn_audit_record_async (PpnAudit *self,
			     const PpnAuditEvent *event,
			     GAsyncReadyCallback callback,
			     gpointer user_data);
/* TRUE when the record is on disk in both; @index is its ledger index */
gboolean ppn_audit_record_finish (PpnAudit *self, GAsyncResult *res, guint64 *index, GError **error);

/* reopen the audit file (SIGHUP after a rotation); it is also reopened
 * by itself when the writer finds the path names another file */
void ppn_audit_reopen (PpnAudit *self);

/* ledger indices of @tenant's entries, ascending, from @after (exclusive,
 * -1 = from the start), at most @limit; *more says whether there are more */
GArray *ppn_audit_list_tenant (PpnAudit *self, const gchar *tenant, gint64 after, guint limit, gboolean *more);

/* GET /v1/audit: a page of @tenant's own entries, each with the entry, its
 * exact bytes (base64) and its inclusion proof against the newest signed
 * tree head, which comes along; page tokens are ledger indices */
JsonNode *ppn_audit_tenant_page (PpnAudit *self, const gchar *tenant, gint64 after, guint limit, GError **error);
JsonNode *ppn_audit_head_to_json (PpnAudit *self, GError **error);
JsonNode *ppn_audit_consistency_to_json (PpnAudit *self, guint64 first, guint64 second, GError **error);
JsonNode *ppn_audit_key_to_json (PpnAudit *self);

/* for /metrics: a PpnMetricsCollector taking the PpnAudit */
void ppn_audit_collect_metrics (GString *out, gpointer audit);

G_END_DECLS
