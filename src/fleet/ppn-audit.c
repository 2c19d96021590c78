#include "config.h"

#define G_LOG_DOMAIN "ppn-audit"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-audit.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

/* at most this many records share one commit */
#define PPN_AUDIT_BATCH_MAX 512

struct _PpnAudit {
	GObject parent_instance;
	gchar *path;
	PpnLedger *ledger;
	GThread *thread;

	GMutex lock; /* guards everything below it */
	GCond cond;
	GQueue queue; /* PpnAuditPending, oldest first */
	gboolean quit;
	gboolean reopen;
	gboolean healthy;
	GHashTable *by_tenant; /* tenant name -> GArray of guint64 ledger indices */
	guint64 records;
	guint64 failures;
	PpnHistogram commit_seconds; /* one batch: both files, fsync included */

	/* the writer thread's own */
	int fd;
	guint64 next_index;
};

G_DEFINE_TYPE (PpnAudit, ppn_audit, G_TYPE_OBJECT)

typedef struct {
	GTask *task;
	JsonObject *entry; /* what goes into the ledger */
	gchar *tenant;
	gchar *detail;
	gchar *node;
} PpnAuditPending;

static void
ppn_audit_pending_free (PpnAuditPending *p)
{
	g_clear_object (&p->task);
	json_object_unref (p->entry);
	g_free (p->tenant);
	g_free (p->detail);
	g_free (p->node);
	g_free (p);
}

static void
ppn_audit_set_string (JsonObject *obj, const gchar *key, const gchar *value)
{
	if (value != NULL)
		json_object_set_string_member (obj, key, value);
	else
		json_object_set_null_member (obj, key);
}

static GBytes *
ppn_audit_serialize (JsonObject *obj)
{
	g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);
	gsize len = 0;
	gchar *data;

	json_node_set_object (node, obj);
	data = ppn_json_to_data (node, &len);
	return g_bytes_new_take (data, len);
}

/* ---- the audit file ---------------------------------------------------- */

static gboolean
ppn_audit_file_open (PpnAudit *self, GError **error)
{
	/* never through a symlink: the trail goes where the config says */
	int fd = g_open (self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("Cannot open audit file %s: %s"),
			     self->path, g_strerror (saved));
		return FALSE;
	}
	if (self->fd >= 0)
		close (self->fd);
	self->fd = fd;
	return TRUE;
}

/* the file was rotated (renamed or removed) or a reopen was asked for:
 * what comes next goes to a file of that name again */
static gboolean
ppn_audit_file_check (PpnAudit *self, gboolean reopen, GError **error)
{
	struct stat by_path, by_fd;

	if (self->fd >= 0 && !reopen && g_stat (self->path, &by_path) == 0 && fstat (self->fd, &by_fd) == 0 &&
	    by_path.st_dev == by_fd.st_dev && by_path.st_ino == by_fd.st_ino)
		return TRUE;
	if (self->fd >= 0)
		g_message ("reopening audit file %s", self->path);
	return ppn_audit_file_open (self, error);
}

static gboolean
ppn_audit_file_write (PpnAudit *self, const gchar *data, gsize len, off_t *before, GError **error)
{
	struct stat st;
	gsize done = 0;
	int saved = 0;

	if (fstat (self->fd, &st) != 0) {
		saved = errno;
		goto fail;
	}
	*before = st.st_size;
	while (done < len) {
		ssize_t n = write (self->fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : ENOSPC;
			/* our own partial line, never acknowledged: not left to be
			 * read as a record */
			if (ftruncate (self->fd, *before) != 0)
				g_warning ("cannot remove a partial record from %s: %s", self->path,
					   g_strerror (errno));
			goto fail;
		}
		done += (gsize)n;
	}
	return TRUE;
fail:
	g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("Cannot write audit file %s: %s"),
		     self->path, g_strerror (saved));
	return FALSE;
}

/* ---- the writer thread ------------------------------------------------- */

static void
ppn_audit_index_add (PpnAudit *self, const gchar *tenant, guint64 index)
{
	GArray *indices;

	if (tenant == NULL)
		return;
	indices = g_hash_table_lookup (self->by_tenant, tenant);
	if (indices == NULL) {
		indices = g_array_new (FALSE, FALSE, sizeof (guint64));
		g_hash_table_insert (self->by_tenant, g_strdup (tenant), indices);
	}
	g_array_append_val (indices, index);
}

/* file first, then the ledger: a ledger that cannot take the batch takes
 * the file's new lines back with it, so the two never disagree on what
 * was acknowledged */
static gboolean
ppn_audit_commit (PpnAudit *self, GPtrArray *batch, gboolean reopen, GError **error)
{
	g_autoptr(GPtrArray) leaves = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
	g_autoptr(GString) lines = g_string_new (NULL);
	guint64 first = 0;
	off_t before = 0;

	if (!ppn_audit_file_check (self, reopen, error))
		return FALSE;
	for (guint i = 0; i < batch->len; i++) {
		PpnAuditPending *p = g_ptr_array_index (batch, i);
		g_autoptr(JsonObject) line = json_object_new ();
		g_autoptr(GBytes) line_data = NULL;
		GList *members, *l;

		json_object_set_int_member (p->entry, "index", (gint64)(self->next_index + i));
		g_ptr_array_add (leaves, ppn_audit_serialize (p->entry));
		/* the file line is the ledger entry plus what only operators see */
		members = json_object_get_members (p->entry);
		for (l = members; l != NULL; l = l->next)
			json_object_set_member (line, l->data,
						json_node_copy (json_object_get_member (p->entry, l->data)));
		g_list_free (members);
		ppn_audit_set_string (line, "node", p->node);
		ppn_audit_set_string (line, "detail", p->detail);
		line_data = ppn_audit_serialize (line);
		g_string_append_len (lines, g_bytes_get_data (line_data, NULL), (gssize)g_bytes_get_size (line_data));
		g_string_append_c (lines, '\n');
	}
	if (!ppn_audit_file_write (self, lines->str, lines->len, &before, error))
		return FALSE;
	if (!ppn_ledger_append (self->ledger, leaves, &first, error)) {
		g_prefix_error (error, _("Cannot write the ledger: "));
		if (ftruncate (self->fd, before) != 0)
			g_warning ("cannot take back audit lines the ledger refused: %s", g_strerror (errno));
		return FALSE;
	}
	if (first != self->next_index)
		g_warning ("ledger index %" G_GUINT64_FORMAT " where %" G_GUINT64_FORMAT
			   " was expected: is another writer appending to it?",
			   first, self->next_index);
	if (fdatasync (self->fd) != 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("Cannot flush audit file %s: %s"),
			     self->path, g_strerror (saved));
		return FALSE;
	}
	self->next_index = first + batch->len;
	return TRUE;
}

static void
ppn_audit_run_batch (PpnAudit *self, GPtrArray *batch, gboolean reopen)
{
	g_autoptr(GError) error = NULL;
	gint64 start = g_get_monotonic_time ();
	gboolean ok = ppn_audit_commit (self, batch, reopen, &error);
	gdouble took = (g_get_monotonic_time () - start) / 1e6;
	guint64 first = self->next_index - batch->len;

	g_mutex_lock (&self->lock);
	ppn_histogram_observe (&self->commit_seconds, took);
	if (ok) {
		self->records += batch->len;
		for (guint i = 0; i < batch->len; i++) {
			PpnAuditPending *p = g_ptr_array_index (batch, i);
			ppn_audit_index_add (self, p->tenant, first + i);
		}
	} else {
		self->failures++;
	}
	if (ok && !self->healthy)
		g_message ("the audit trail can be written again; lifecycle operations resume");
	else if (!ok)
		g_warning ("AUDIT TRAIL NOT WRITABLE, lifecycle operations are refused until it is: %s",
			   error->message);
	self->healthy = ok;
	g_mutex_unlock (&self->lock);

	for (guint i = 0; i < batch->len; i++) {
		PpnAuditPending *p = g_ptr_array_index (batch, i);
		guint64 index = first + i;
		if (ok)
			g_task_return_pointer (p->task, g_memdup2 (&index, sizeof index), g_free);
		else
			g_task_return_new_error (p->task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
						 _("The audit trail cannot be written right now; nothing was done"));
	}
}

static gpointer
ppn_audit_thread (gpointer data)
{
	PpnAudit *self = data;

	for (;;) {
		g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_audit_pending_free);
		gboolean reopen;

		g_mutex_lock (&self->lock);
		while (!self->quit && g_queue_is_empty (&self->queue))
			g_cond_wait (&self->cond, &self->lock);
		while (!g_queue_is_empty (&self->queue) && batch->len < PPN_AUDIT_BATCH_MAX)
			g_ptr_array_add (batch, g_queue_pop_head (&self->queue));
		reopen = self->reopen;
		self->reopen = FALSE;
		g_mutex_unlock (&self->lock);
		/* what was queued before the end is still written */
		if (batch->len == 0)
			break;
		ppn_audit_run_batch (self, batch, reopen);
	}
	return NULL;
}

/* ---- main loop side ---------------------------------------------------- */

void
ppn_audit_record_async (PpnAudit *self, const PpnAuditEvent *event, GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	PpnAuditPending *p;

	g_return_if_fail (PPN_IS_AUDIT (self));
	g_return_if_fail (event->op != NULL && event->outcome != NULL);
	task = g_task_new (self, NULL, callback, user_data);
	g_task_set_source_tag (task, ppn_audit_record_async);
	p = g_new0 (PpnAuditPending, 1);
	p->entry = json_object_new ();
	{
		/* to the microsecond: records of one second stay apart */
		gint64 usec = g_get_real_time ();
		g_autoptr(GDateTime) secs = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
		g_autoptr(GDateTime) t = g_date_time_add (secs, usec % G_USEC_PER_SEC);
		g_autofree gchar *now = g_date_time_format (t, "%Y-%m-%dT%H:%M:%S.%fZ");
		/* "index" comes first in the line; the writer sets its value */
		json_object_set_int_member (p->entry, "index", -1);
		json_object_set_string_member (p->entry, "time", now);
	}
	ppn_audit_set_string (p->entry, "request_id", event->request_id);
	ppn_audit_set_string (p->entry, "actor", event->actor != NULL ? event->actor : "tenant");
	ppn_audit_set_string (p->entry, "tenant", event->tenant);
	json_object_set_string_member (p->entry, "op", event->op);
	ppn_audit_set_string (p->entry, "vm_id", event->vm_id);
	ppn_audit_set_string (p->entry, "vm_name", event->vm_name);
	json_object_set_string_member (p->entry, "outcome", event->outcome);
	ppn_audit_set_string (p->entry, "error", event->error);
	if (event->count > 0)
		json_object_set_int_member (p->entry, "count", event->count);
	p->tenant = g_strdup (event->tenant);
	p->detail = g_strdup (event->detail);
	p->node = g_strdup (event->node);
	p->task = g_steal_pointer (&task);

	g_mutex_lock (&self->lock);
	if (self->quit) {
		g_mutex_unlock (&self->lock);
		g_task_return_new_error (p->task, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("The audit trail is closing"));
		ppn_audit_pending_free (p);
		return;
	}
	g_queue_push_tail (&self->queue, p);
	g_cond_signal (&self->cond);
	g_mutex_unlock (&self->lock);
}

gboolean
ppn_audit_record_finish (PpnAudit *self, GAsyncResult *res, guint64 *index, GError **error)
{
	g_autofree guint64 *value = NULL;

	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	value = g_task_propagate_pointer (G_TASK (res), error);
	if (value == NULL)
		return FALSE;
	if (index != NULL)
		*index = *value;
	return TRUE;
}

void
ppn_audit_reopen (PpnAudit *self)
{
	g_return_if_fail (PPN_IS_AUDIT (self));
	g_mutex_lock (&self->lock);
	self->reopen = TRUE;
	g_mutex_unlock (&self->lock);
}

GArray *
ppn_audit_list_tenant (PpnAudit *self, const gchar *tenant, gint64 after, guint limit, gboolean *more)
{
	GArray *page = g_array_new (FALSE, FALSE, sizeof (guint64));
	GArray *indices;
	guint lo = 0, hi;

	g_return_val_if_fail (PPN_IS_AUDIT (self), page);
	*more = FALSE;
	g_mutex_lock (&self->lock);
	indices = g_hash_table_lookup (self->by_tenant, tenant);
	if (indices != NULL) {
		/* the first index past @after, by bisection: indices ascend */
		hi = indices->len;
		while (lo < hi) {
			guint mid = lo + (hi - lo) / 2;
			if ((gint64)g_array_index (indices, guint64, mid) <= after)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (guint i = lo; i < indices->len && page->len < limit; i++)
			g_array_append_val (page, g_array_index (indices, guint64, i));
		*more = lo + page->len < indices->len;
	}
	g_mutex_unlock (&self->lock);
	return page;
}

void
ppn_audit_collect_metrics (GString *out, gpointer audit)
{
	PpnAudit *self = PPN_AUDIT (audit);
	PpnHistogram commit;
	guint64 records, failures;
	gboolean healthy;

	g_mutex_lock (&self->lock);
	commit = self->commit_seconds;
	records = self->records;
	failures = self->failures;
	healthy = self->healthy;
	g_mutex_unlock (&self->lock);
	ppn_metrics_family (out, "ppn_audit_records_total", "counter",
			    "Audit records on disk in both the audit file and the ledger.");
	g_string_append_printf (out, "ppn_audit_records_total %" G_GUINT64_FORMAT "\n", records);
	ppn_metrics_family (out, "ppn_audit_write_failures_total", "counter",
			    "Audit commits that failed (operations refused with 503).");
	g_string_append_printf (out, "ppn_audit_write_failures_total %" G_GUINT64_FORMAT "\n", failures);
	ppn_metrics_family (out, "ppn_audit_healthy", "gauge", "1 when the last audit commit succeeded.");
	g_string_append_printf (out, "ppn_audit_healthy %d\n", healthy ? 1 : 0);
	ppn_metrics_family (out, "ppn_audit_commit_duration_seconds", "histogram",
			    "One audit commit: the file, the ledger and their fsyncs, for a batch of records.");
	ppn_histogram_render (out, "ppn_audit_commit_duration_seconds", "", &commit);
}

/* ---- what tenants may read -------------------------------------------- */

static PpnTreeHead *
ppn_audit_head (PpnAudit *self, GError **error)
{
	g_autoptr(GError) local = NULL;
	PpnTreeHead *head = ppn_ledger_get_tree_head (self->ledger, &local);

	if (head == NULL) {
		g_debug ("no tree head: %s", local->message);
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("The ledger has no entries yet"));
	}
	return head;
}

JsonNode *
ppn_audit_head_to_json (PpnAudit *self, GError **error)
{
	g_autoptr(PpnTreeHead) head = NULL;

	g_return_val_if_fail (PPN_IS_AUDIT (self), NULL);
	head = ppn_audit_head (self, error);
	return head != NULL ? ppn_tree_head_to_json (head) : NULL;
}

JsonNode *
ppn_audit_key_to_json (PpnAudit *self)
{
	g_autoptr(GBytes) key = ppn_ledger_get_public_key (self->ledger);
	g_autoptr(JsonObject) obj = json_object_new ();
	JsonNode *node = json_node_new (JSON_NODE_OBJECT);
	gsize len = 0;
	const gchar *pem = g_bytes_get_data (key, &len);
	g_autofree gchar *str = g_strndup (pem, len);

	json_object_set_string_member (obj, "algorithm", "ed25519");
	json_object_set_string_member (obj, "public_key", str);
	json_node_set_object (node, obj);
	return node;
}

JsonNode *
ppn_audit_consistency_to_json (PpnAudit *self, guint64 first, guint64 second, GError **error)
{
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GPtrArray) proof = NULL;
	g_autoptr(JsonObject) obj = json_object_new ();
	JsonNode *node;

	g_return_val_if_fail (PPN_IS_AUDIT (self), NULL);
	head = ppn_audit_head (self, error);
	if (head == NULL)
		return NULL;
	if (first < 1 || first > second || second > head->tree_size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Parameters 'first' and 'second' must be tree sizes with 1 <= first <= second <= %"
			       G_GUINT64_FORMAT " (the newest head)"),
			     head->tree_size);
		return NULL;
	}
	proof = ppn_ledger_prove_consistency (self->ledger, first, second, error);
	if (proof == NULL)
		return NULL;
	json_object_set_int_member (obj, "first", (gint64)first);
	json_object_set_int_member (obj, "second", (gint64)second);
	json_object_set_member (obj, "proof", ppn_merkle_proof_to_json (proof));
	node = json_node_new (JSON_NODE_OBJECT);
	json_node_set_object (node, obj);
	return node;
}

/* a page of @tenant's own entries, each with its inclusion proof in the
 * tree of the newest signed head, which comes with them */
JsonNode *
ppn_audit_tenant_page (PpnAudit *self, const gchar *tenant, gint64 after, guint limit, GError **error)
{
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GArray) page = NULL;
	g_autoptr(JsonObject) obj = json_object_new ();
	JsonArray *entries = json_array_new ();
	gboolean more = FALSE;
	guint64 last = 0;
	JsonNode *node;

	g_return_val_if_fail (PPN_IS_AUDIT (self), NULL);
	json_object_set_array_member (obj, "entries", entries);
	head = ppn_ledger_get_tree_head (self->ledger, NULL);
	if (head != NULL) {
		page = ppn_audit_list_tenant (self, tenant, after, limit, &more);
		json_object_set_member (obj, "tree_head", ppn_tree_head_to_json (head));
	} else {
		json_object_set_null_member (obj, "tree_head");
	}
	for (guint i = 0; page != NULL && i < page->len; i++) {
		guint64 index = g_array_index (page, guint64, i);
		g_autoptr(GBytes) data = NULL;
		g_autoptr(GPtrArray) proof = NULL;
		g_autoptr(JsonNode) parsed = NULL;
		g_autofree gchar *leaf = NULL;
		JsonObject *item;
		gsize len = 0;
		const gchar *raw;

		/* written after the head was read: on the next page */
		if (index >= head->tree_size) {
			more = TRUE;
			break;
		}
		data = ppn_ledger_get_entry (self->ledger, index, error);
		proof = data != NULL ? ppn_ledger_prove_inclusion (self->ledger, index, head->tree_size, error) : NULL;
		if (proof == NULL)
			return NULL;
		raw = g_bytes_get_data (data, &len);
		parsed = ppn_json_parse_object (raw, len, 8, error);
		if (parsed == NULL)
			return NULL;
		leaf = g_base64_encode ((const guchar *)raw, len);
		item = json_object_new ();
		json_object_set_int_member (item, "index", (gint64)index);
		json_object_set_member (item, "entry", g_steal_pointer (&parsed));
		json_object_set_string_member (item, "leaf", leaf);
		json_object_set_member (item, "inclusion_proof", ppn_merkle_proof_to_json (proof));
		json_array_add_object_element (entries, item);
		last = index;
	}
	if (more && json_array_get_length (entries) > 0) {
		g_autofree gchar *token = g_strdup_printf ("%" G_GUINT64_FORMAT, last);
		json_object_set_string_member (obj, "next_page_token", token);
	}
	node = json_node_new (JSON_NODE_OBJECT);
	json_node_set_object (node, obj);
	return node;
}

/* The tenant of an entry this writer wrote, without a JSON parser: its
 * members come in a fixed order, "tenant" before any member a tenant
 * chose, and a tenant's name is a validated name (no escapes), so the
 * first "tenant": is the member. Parsing 100,000 entries with json-glib
 * made a start-up take a second; this takes a fraction. FALSE when the
 * entry is not of that shape: the caller parses it then. */
static gboolean
ppn_audit_entry_tenant (const gchar *raw, gsize len, gchar **tenant)
{
	static const gchar key[] = "\"tenant\":";
	const gchar *at = g_strstr_len (raw, (gssize)len, key);
	const gchar *end = raw + len, *value, *close;

	*tenant = NULL;
	if (at == NULL || len < 2 || raw[0] != '{' || raw[len - 1] != '}')
		return FALSE;
	value = at + strlen (key);
	if (end - value >= 4 && memcmp (value, "null", 4) == 0)
		return TRUE;
	if (value >= end || *value != '"')
		return FALSE;
	close = memchr (value + 1, '"', (gsize)(end - value - 1));
	if (close == NULL)
		return FALSE;
	*tenant = g_strndup (value + 1, (gsize)(close - value - 1));
	if (!ppn_name_validate ("tenant", *tenant, NULL)) {
		g_clear_pointer (tenant, g_free);
		return FALSE;
	}
	return TRUE;
}

/* which tenant each ledger entry is about, so a tenant's own can be
 * listed without reading the others */
static gboolean
ppn_audit_load_index (PpnAudit *self, GError **error)
{
	g_autoptr(PpnTreeHead) head = ppn_ledger_get_tree_head (self->ledger, NULL);
	guint64 size = head != NULL ? head->tree_size : 0;
	g_autoptr(GError) local = NULL;

	for (guint64 i = 0; i < size; i++) {
		g_autoptr(GBytes) data = ppn_ledger_get_entry (self->ledger, i, error);
		g_autoptr(JsonNode) node = NULL;
		g_autofree gchar *tenant = NULL;
		JsonObject *obj;
		gsize len = 0;
		const gchar *raw;

		if (data == NULL)
			return FALSE;
		raw = g_bytes_get_data (data, &len);
		if (ppn_audit_entry_tenant (raw, len, &tenant)) {
			if (tenant != NULL)
				ppn_audit_index_add (self, tenant, i);
			g_clear_pointer (&tenant, g_free);
			continue;
		}
		node = ppn_json_parse_object (raw, len, 8, &local);
		if (node == NULL) {
			/* it is still in the ledger and still proven; it is just
			 * nobody's to list */
			g_warning ("ledger entry %" G_GUINT64_FORMAT " is not an audit record (%s); not listed for any"
				   " tenant",
				   i, local->message);
			g_clear_error (&local);
			continue;
		}
		obj = json_node_get_object (node);
		if (json_object_has_member (obj, "tenant") &&
		    JSON_NODE_HOLDS_VALUE (json_object_get_member (obj, "tenant")) &&
		    json_node_get_value_type (json_object_get_member (obj, "tenant")) == G_TYPE_STRING)
			ppn_audit_index_add (self, json_object_get_string_member (obj, "tenant"), i);
	}
	self->next_index = size;
	return TRUE;
}

/* the "index" of one audit line, -1 if it has none */
static gint64
ppn_audit_line_index (const gchar *line, gsize len)
{
	g_autoptr(JsonNode) node = ppn_json_parse_object (line, len, 8, NULL);
	JsonNode *index;

	if (node == NULL)
		return -1;
	index = json_object_get_member (json_node_get_object (node), "index");
	return index != NULL && json_node_get_value_type (index) == G_TYPE_INT64 ? json_node_get_int (index) : -1;
}

/* After a crash the file's end and the ledger's may differ: lines the
 * ledger never took (the crash came between the two writes; they were
 * never acknowledged, like a torn last line) are taken back, and lines of
 * entries the ledger has but the file lost (power loss before its fsync)
 * are written again from the ledger. Only the current file is looked at:
 * across a rotation nothing is known of the older ones. */
static gboolean
ppn_audit_file_recover (PpnAudit *self, GError **error)
{
	struct stat st;
	gsize tail_len;
	g_autofree gchar *tail = NULL;
	off_t tail_start, keep;
	gint64 last = -1;
	gsize end;

	if (fstat (self->fd, &st) != 0 || st.st_size == 0)
		return TRUE;
	tail_len = (gsize)MIN (st.st_size, 4 * 1024 * 1024);
	tail_start = st.st_size - (off_t)tail_len;
	tail = g_malloc (tail_len + 1);
	{
		int rfd = g_open (self->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
		ssize_t n = rfd >= 0 ? pread (rfd, tail, tail_len, tail_start) : -1;
		if (rfd >= 0)
			close (rfd);
		if (n != (ssize_t)tail_len) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot read the end of audit file %s"),
				     self->path);
			return FALSE;
		}
	}
	tail[tail_len] = '\0';
	/* walk back over whole lines: a torn one, and lines past the ledger */
	end = tail_len;
	if (end > 0 && tail[end - 1] != '\n') {
		while (end > 0 && tail[end - 1] != '\n')
			end--;
	}
	while (end > 0) {
		gsize start = end - 1;
		while (start > 0 && tail[start - 1] != '\n')
			start--;
		gint64 index = ppn_audit_line_index (tail + start, end - 1 - start);
		if (index >= 0 && (guint64)index >= self->next_index) {
			end = start;
			continue;
		}
		/* acknowledged, or not ours to judge: it stays, and so does
		 * everything before it */
		last = index;
		break;
	}
	keep = tail_start + (off_t)end;
	if (keep < st.st_size) {
		g_warning ("audit file %s: taking back %" G_GINT64_FORMAT " bytes the ledger never took (written before"
			   " a crash, never acknowledged)",
			   self->path, (gint64)(st.st_size - keep));
		if (ftruncate (self->fd, keep) != 0) {
			int saved = errno;
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("Cannot repair audit file %s: %s"),
				     self->path, g_strerror (saved));
			return FALSE;
		}
	}
	if (last < 0 || (guint64)last + 1 >= self->next_index)
		return TRUE;
	/* the ledger is ahead: its entries, marked as recovered */
	{
		g_autoptr(GString) lines = g_string_new (NULL);
		off_t before = 0;
		g_warning ("audit file %s: writing entries %" G_GINT64_FORMAT " to %" G_GUINT64_FORMAT
			   " again from the ledger (lost in a crash)",
			   self->path, last + 1, self->next_index - 1);
		for (guint64 i = (guint64)last + 1; i < self->next_index; i++) {
			g_autoptr(GBytes) data = ppn_ledger_get_entry (self->ledger, i, error);
			g_autoptr(JsonNode) node = NULL;
			g_autoptr(GBytes) line = NULL;
			gsize len = 0;
			const gchar *raw;
			if (data == NULL)
				return FALSE;
			raw = g_bytes_get_data (data, &len);
			node = ppn_json_parse_object (raw, len, 8, NULL);
			if (node == NULL)
				continue;
			json_object_set_string_member (json_node_get_object (node), "detail",
						       "recovered from the ledger after a crash");
			line = ppn_audit_serialize (json_node_get_object (node));
			g_string_append_len (lines, g_bytes_get_data (line, NULL), (gssize)g_bytes_get_size (line));
			g_string_append_c (lines, '\n');
		}
		return ppn_audit_file_write (self, lines->str, lines->len, &before, error) && fdatasync (self->fd) == 0;
	}
}

PpnAudit *
ppn_audit_new (const gchar *file_path, PpnLedger *ledger, GError **error)
{
	g_autoptr(PpnAudit) self = g_object_new (PPN_TYPE_AUDIT, NULL);
	gint64 start = g_get_monotonic_time ();

	g_return_val_if_fail (file_path != NULL, NULL);
	g_return_val_if_fail (PPN_IS_LEDGER (ledger), NULL);
	self->path = g_strdup (file_path);
	self->ledger = g_object_ref (ledger);
	/* a sink that cannot be written at start is refused at start */
	if (!ppn_audit_file_open (self, error) || !ppn_audit_load_index (self, error) ||
	    !ppn_audit_file_recover (self, error))
		return NULL;
	g_message ("audit trail: %s and a ledger of %" G_GUINT64_FORMAT " entries (indexed in %.1f ms)", self->path,
		   self->next_index, (g_get_monotonic_time () - start) / 1000.0);
	self->thread = g_thread_new ("ppn-audit", ppn_audit_thread, self);
	return g_steal_pointer (&self);
}

static void
ppn_audit_finalize (GObject *object)
{
	PpnAudit *self = PPN_AUDIT (object);

	if (self->thread != NULL) {
		g_mutex_lock (&self->lock);
		self->quit = TRUE;
		g_cond_signal (&self->cond);
		g_mutex_unlock (&self->lock);
		g_thread_join (self->thread);
	}
	if (self->fd >= 0)
		close (self->fd);
	g_clear_object (&self->ledger);
	g_clear_pointer (&self->by_tenant, g_hash_table_unref);
	g_free (self->path);
	g_mutex_clear (&self->lock);
	g_cond_clear (&self->cond);
	G_OBJECT_CLASS (ppn_audit_parent_class)->finalize (object);
}

static void
ppn_audit_class_init (PpnAuditClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_audit_finalize;
}

static void
ppn_audit_init (PpnAudit *self)
{
	self->fd = -1;
	self->healthy = TRUE;
	g_mutex_init (&self->lock);
	g_cond_init (&self->cond);
	g_queue_init (&self->queue);
	self->by_tenant = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_array_unref);
}
