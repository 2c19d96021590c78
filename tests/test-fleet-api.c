/* The tenant API of a whole fleet (ppn-fleetd + ppn-agentd) on libvirt's
 * test driver: everything but a real guest. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "ppn-test-util.h"
#include "ppn-token.h"

static PpnTestFleet *
start_fleet (guint max_vms)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .real_guest = FALSE, .max_vms = max_vms};

	return ppn_test_fleet_new_started (&opts);
}

static JsonObject *
obj (JsonNode *node)
{
	g_assert_nonnull (node);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
	return json_node_get_object (node);
}

static const gchar *
error_code (JsonNode *node)
{
	return json_object_get_string_member (json_object_get_object_member (obj (node), "error"), "code");
}

static gchar *
create_vm (PpnTestFleet *fleet, const gchar *token, const gchar *name)
{
	g_autofree gchar *body = g_strdup_printf (
		"{\"name\":\"%s\",\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":128,"
		"\"port_forwards\":[{\"guest_port\":80,\"proto\":\"tcp\"},{\"guest_port\":22}]}",
		name);
	guint status = 0;
	g_autofree gchar *raw = NULL;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, token, "POST", "/v1/vms", body, &status, &raw);

	if (status != 201)
		g_error ("create %s: expected 201, got %u: %s", name, status, raw);
	return g_strdup (json_object_get_string_member (obj (reply), "id"));
}

static guint
list_len (PpnTestFleet *fleet, const gchar *token)
{
	guint status = 0;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, token, "GET", "/v1/vms", NULL, &status, NULL);

	g_assert_cmpuint (status, ==, 200);
	return json_array_get_length (json_object_get_array_member (obj (reply), "vms"));
}

static void
test_lifecycle (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *body = g_strdup (
		"{\"name\":\"web1\",\"image\":\"test-guest\",\"vcpus\":2,\"memory_mib\":256,"
		"\"port_forwards\":[{\"guest_port\":80,\"proto\":\"tcp\"},{\"guest_port\":53,\"proto\":\"udp\"}]}");
	guint status = 0;
	g_autoptr(JsonNode) created = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, NULL);
	g_autoptr(JsonNode) shown = NULL;
	g_autoptr(JsonNode) quota = NULL;
	g_autofree gchar *id = NULL;
	g_autofree gchar *path = NULL;
	JsonArray *fwds;
	g_autoptr(GHashTable) ports = g_hash_table_new (NULL, NULL);

	g_assert_cmpuint (status, ==, 201);
	id = g_strdup (json_object_get_string_member (obj (created), "id"));
	g_assert_cmpuint (strlen (id), ==, 16);
	g_assert_cmpstr (json_object_get_string_member (obj (created), "name"), ==, "web1");
	g_assert_cmpstr (json_object_get_string_member (obj (created), "state"), ==, "running");
	g_assert_cmpint (json_object_get_int_member (obj (created), "vcpus"), ==, 2);
	g_assert_false (json_object_has_member (obj (created), "tenant"));
	fwds = json_object_get_array_member (obj (created), "port_forwards");
	g_assert_cmpuint (json_array_get_length (fwds), ==, 2);
	for (guint i = 0; i < 2; i++) {
		JsonObject *f = json_array_get_object_element (fwds, i);
		gint64 port = json_object_get_int_member (f, "host_port");
		g_assert_cmpstr (json_object_get_string_member (f, "host_address"), ==, "127.0.0.1");
		g_assert_cmpint (port, >=, fleet->port_first);
		g_assert_cmpint (port, <=, fleet->port_last);
		g_assert_true (g_hash_table_add (ports, GINT_TO_POINTER (port)));
	}

	path = g_strconcat ("/v1/vms/", id, NULL);
	shown = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
	g_assert_cmpuint (status, ==, 200);
	g_assert_cmpstr (json_object_get_string_member (obj (shown), "id"), ==, id);
	g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 1);
	quota = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
	g_assert_cmpint (json_object_get_int_member (obj (quota), "used"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (obj (quota), "max_vms"), ==, 4);

	g_assert_cmpstr (json_object_get_string_member (obj (created), "egress"), ==, "nat");
	/* egress none is asked for, applied by the node, and shown */
	{
		g_autoptr(JsonNode) closed = ppn_test_fleet_call (
			fleet, fleet->token1, "POST", "/v1/vms",
			"{\"name\":\"sealed\",\"image\":\"test-guest\",\"egress\":\"none\"}", &status, NULL);
		g_autofree gchar *closed_path = NULL;
		g_assert_cmpuint (status, ==, 201);
		g_assert_cmpstr (json_object_get_string_member (obj (closed), "egress"), ==, "none");
		closed_path = g_strconcat ("/v1/vms/", json_object_get_string_member (obj (closed), "id"), NULL);
		g_clear_pointer (&closed, json_node_unref);
		closed = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", closed_path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	/* the same name twice is a conflict */
	{
		g_autoptr(JsonNode) dup = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, NULL);
		g_assert_cmpuint (status, ==, 409);
		g_assert_cmpstr (error_code (dup), ==, "conflict");
	}

	{
		g_autoptr(JsonNode) none = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
		g_assert_null (none);
	}
	g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 0);
	{
		g_autoptr(JsonNode) gone = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
		g_assert_cmpstr (error_code (gone), ==, "not_found");
	}
}

/* case 01: another tenant's VM looks exactly like a missing one */
static void
test_cross_tenant (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *id = create_vm (fleet, fleet->token1, "a1");
	g_autofree gchar *path = g_strconcat ("/v1/vms/", id, NULL);
	g_autofree gchar *missing_raw = NULL;
	guint status = 0, missing_status = 0;
	const gchar *methods[] = {"GET", "DELETE", "PUT", "POST", "PATCH"};
	const gchar *suffixes[] = {"", "/", "/console", "?limit=1"};
	g_autoptr(JsonNode) missing = ppn_test_fleet_call (fleet, fleet->token2, "GET", "/v1/vms/0123456789abcdef",
							   NULL, &missing_status, &missing_raw);

	g_assert_cmpuint (missing_status, ==, 404);
	/* every method on every path under A's VM answers B exactly as the
	 * same request about a VM that never existed */
	for (guint i = 0; i < G_N_ELEMENTS (methods); i++) {
		for (guint j = 0; j < G_N_ELEMENTS (suffixes); j++) {
			g_autofree gchar *p_other = g_strconcat (path, suffixes[j], NULL);
			g_autofree gchar *p_missing = g_strconcat ("/v1/vms/0123456789abcdef", suffixes[j], NULL);
			g_autofree gchar *raw = NULL;
			g_autofree gchar *raw_missing = NULL;
			guint st_missing = 0;
			g_autoptr(JsonNode) r1 = ppn_test_fleet_call (fleet, fleet->token2, methods[i], p_other, "{}",
								      &status, &raw);
			g_autoptr(JsonNode) r2 = ppn_test_fleet_call (fleet, fleet->token2, methods[i], p_missing, "{}",
								      &st_missing, &raw_missing);
			g_test_message ("%s %s -> %u", methods[i], p_other, status);
			g_assert_cmpuint (status, ==, st_missing);
			g_assert_cmpstr (raw, ==, raw_missing);
			g_assert_cmpuint (status, !=, 200);
			g_assert_cmpuint (status, !=, 204);
		}
	}
	for (guint i = 0; i < 2; i++) {
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token2, methods[i], path, NULL, &status, &raw);
		g_assert_cmpuint (status, ==, 404);
		g_assert_cmpstr (raw, ==, missing_raw);
	}
	g_assert_cmpuint (list_len (fleet, fleet->token2), ==, 0);
	/* A's VM is still there and still A's */
	g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 1);
	{
		g_autoptr(JsonNode) shown = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 200);
		g_assert_cmpstr (json_object_get_string_member (obj (shown), "state"), ==, "running");
	}
	/* naming A's VM id as an image is refused, not resolved */
	{
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"b1\",\"image\":\"%s\"}", id);
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token2, "POST", "/v1/vms", body, &status, NULL);
		g_assert_cmpuint (status, ==, 400);
	}
}

static void
test_pagination (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *a = create_vm (fleet, fleet->token1, "p1");
	g_autofree gchar *b = create_vm (fleet, fleet->token1, "p2");
	g_autofree gchar *c = create_vm (fleet, fleet->token1, "p3");
	g_autofree gchar *d = create_vm (fleet, fleet->token2, "q1");
	g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
	g_autofree gchar *token = NULL;
	guint status = 0;

	do {
		g_autofree gchar *path = token != NULL ? g_strdup_printf ("/v1/vms?limit=1&page_token=%s", token)
						       : g_strdup ("/v1/vms?limit=1");
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		JsonArray *vms;
		g_assert_cmpuint (status, ==, 200);
		vms = json_object_get_array_member (obj (reply), "vms");
		g_assert_cmpuint (json_array_get_length (vms), <=, 1);
		if (json_array_get_length (vms) == 1)
			g_ptr_array_add (seen, g_strdup (json_object_get_string_member (
						       json_array_get_object_element (vms, 0), "id")));
		g_free (token);
		token = g_strdup (json_object_get_string_member_with_default (obj (reply), "next_page_token", NULL));
		/* bob, holding alice's cursor, still sees only bob's list */
		if (token != NULL) {
			g_autofree gchar *bpath = g_strdup_printf ("/v1/vms?page_token=%s", token);
			g_autoptr(JsonNode) breply = ppn_test_fleet_call (fleet, fleet->token2, "GET", bpath, NULL,
									  &status, NULL);
			JsonArray *bvms = json_object_get_array_member (obj (breply), "vms");
			for (guint i = 0; i < json_array_get_length (bvms); i++)
				g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (bvms, i),
										"id"), ==, d);
		}
	} while (token != NULL);
	g_assert_cmpuint (seen->len, ==, 3);
	g_assert_cmpstr (g_ptr_array_index (seen, 0), ==, a);
	g_assert_cmpstr (g_ptr_array_index (seen, 1), ==, b);
	g_assert_cmpstr (g_ptr_array_index (seen, 2), ==, c);
	{
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/vms?page_token=bogus!",
								 NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 400);
	}
}

/* every way of failing authentication gets the same 401 */
static void
test_auth (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *truncated = g_strndup (fleet->token1, strlen (fleet->token1) - 1);
	g_autofree gchar *reference = NULL;
	g_autofree gchar *qpath = g_strdup_printf ("/v1/vms?access_token=%s", fleet->token1);
	const gchar *headers[] = {NULL, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer-ish x",
				  "Bearer ppn_unknownunknownunknownunknownunknownunk", NULL};
	guint status = 0;

	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, NULL, "GET", "/v1/vms", NULL, &status, &reference);
		g_assert_cmpuint (status, ==, 401);
		g_assert_cmpstr (error_code (r), ==, "unauthorized");
	}
	for (guint i = 1; headers[i] != NULL; i++) {
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
		g_autoptr(GBytes) bytes = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", headers[i]);
		bytes = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_nonnull (bytes);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 401);
		g_assert_cmpstr (soup_message_headers_get_one (soup_message_get_response_headers (msg),
							       "WWW-Authenticate"), ==, "Bearer realm=\"ppn\"");
		g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), reference, strlen (reference));
	}
	{
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, truncated, "GET", "/v1/vms", NULL, &status, &raw);
		g_assert_cmpuint (status, ==, 401);
		g_assert_cmpstr (raw, ==, reference);
	}
	{
		/* a token in the query string is refused even when it is valid */
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, NULL, "GET", qpath, NULL, &status, &raw);
		g_assert_cmpuint (status, ==, 401);
		g_assert_cmpstr (raw, ==, reference);
	}
	{
		/* two Authorization headers, the second valid: refused */
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
		g_autofree gchar *good = g_strconcat ("Bearer ", fleet->token1, NULL);
		g_autoptr(GBytes) bytes = NULL;
		soup_message_headers_append (soup_message_get_request_headers (msg), "Authorization", "Bearer wrong");
		soup_message_headers_append (soup_message_get_request_headers (msg), "Authorization", good);
		bytes = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 401);
	}
	{
		/* identity headers change nothing */
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
		g_autoptr(GBytes) bytes = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (msg), "X-Tenant", "alice");
		soup_message_headers_replace (soup_message_get_request_headers (msg), "X-Forwarded-User", "alice");
		bytes = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 401);
	}
}

static guint64
daemon_rss_kib (GSubprocess *proc)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/status", g_subprocess_get_identifier (proc));
	g_autofree gchar *status = NULL;
	const gchar *line;

	g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
	line = strstr (status, "VmRSS:");
	g_assert_nonnull (line);
	return g_ascii_strtoull (line + 6, NULL, 10);
}

typedef struct {
	const gchar *body;
	guint status;
	const gchar *code;
	const gchar *mentions;
} BadCase;

/* cases 04, 05, 07: refused with the right status, naming the field, and
 * nothing is created */
static void
test_bad_requests (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *long_name = NULL;
	g_autofree gchar *many_fwds = NULL;
	g_autofree gchar *deep = NULL;
	GString *s;
	const BadCase cases[] = {
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"tenant\":\"bob\"}", 400, "invalid_request", "tenant"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"egress\":\"open\"}", 400, "invalid_request", "egress"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"egress\":false}", 400, "invalid_request", "egress"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"vcpus\":\"2\"}", 400, "invalid_request", "vcpus"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"vcpus\":1,\"vcpus\":64}", 400, "invalid_request", "vcpus"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":18446744073709551616}", 400, "invalid_request", NULL},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":1e400}", 400, "invalid_request", NULL},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":-1}", 400, "invalid_request", "memory_mib"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":0}", 400, "invalid_request", "memory_mib"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":2.5}", 400, "invalid_request", "memory_mib"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"memory_mib\":\"512\"}", 400, "invalid_request", "memory_mib"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"vcpus\":4096}", 400, "invalid_request", "vcpus"},
		{"{\"name\":\"a</name><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><name>b\","
		 "\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"a&b\",\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"a'b\",\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"a\\\"b\",\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"a\\u0000b\",\"image\":\"test-guest\"}", 400, "invalid_request", "NUL"},
		{"{\"name\":\"gr\xc3\xbc\xc3\x9f\",\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"x\",\"image\":\"../../etc/passwd\"}", 400, "invalid_request", "image"},
		{"{\"name\":\"x\",\"image\":\"/var/lib/ppn/images/test-guest/vmlinuz\"}", 400, "invalid_request", "image"},
		{"{\"name\":\"x\",\"image\":\"https://example.com/evil.qcow2\"}", 400, "invalid_request", "image"},
		{"{\"name\":\"x\",\"image\":\"no-such-image\"}", 400, "invalid_request", "image"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":0}]}", 400, "invalid_request", "guest_port"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":65536}]}", 400, "invalid_request", "guest_port"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":-1}]}", 400, "invalid_request", "guest_port"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":\"22\"}]}", 400, "invalid_request", "guest_port"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":22,\"proto\":\"sctp\"}]}", 400, "invalid_request", "proto"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[{\"guest_port\":22,\"host_port\":22}]}", 400, "invalid_request", "host_port"},
		{"[]", 400, "invalid_request", NULL},
		{"not json", 400, "invalid_request", NULL},
		{"{\"image\":\"test-guest\"}", 400, "invalid_request", "name"},
		{"{\"name\":\"x\",\"image\":\"test-guest\",\"vcpus\":null}", 400, "invalid_request", "vcpus"},
		{"{\"name\":\"x\",\"image\":\"test-guest\"} {\"name\":\"y\"}", 400, "invalid_request", "more than one"},
		{"{\"name\":\"x\",\"image\":\"test-guest\"}[]", 400, "invalid_request", "more than one"},
		{NULL, 0, NULL, NULL},
	};
	guint status = 0;

	for (guint i = 0; cases[i].body != NULL; i++) {
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", cases[i].body,
								 &status, &raw);
		g_test_message ("%s -> %u %s", cases[i].body, status, raw);
		g_assert_cmpuint (status, ==, cases[i].status);
		g_assert_cmpstr (error_code (reply), ==, cases[i].code);
		if (cases[i].mentions != NULL)
			g_assert_nonnull (strstr (raw, cases[i].mentions));
	}

	long_name = g_strnfill (10000, 'a');
	{
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"%s\",\"image\":\"test-guest\"}", long_name);
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, NULL);
		g_assert_cmpuint (status, ==, 400);
	}
	s = g_string_new ("{\"name\":\"x\",\"image\":\"test-guest\",\"port_forwards\":[");
	for (guint i = 0; i < 50; i++)
		g_string_append_printf (s, "%s{\"guest_port\":%u}", i > 0 ? "," : "", 1000 + i);
	g_string_append (s, "]}");
	many_fwds = g_string_free (s, FALSE);
	{
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", many_fwds, &status, &raw);
		g_assert_cmpuint (status, ==, 400);
		g_assert_nonnull (strstr (raw, "port_forwards"));
	}
	/* 200,000 nested arrays: refused, and the daemon stays up */
	deep = g_strnfill (200000, '[');
	{
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", deep, &status, NULL);
		g_assert_true (status == 400 || status == 413);
	}
	/* wrong content type */
	{
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
		g_autofree gchar *auth = g_strconcat ("Bearer ", fleet->token1, NULL);
		g_autoptr(GBytes) body = g_bytes_new_static ("{}", 2);
		g_autoptr(GBytes) reply = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		soup_message_set_request_body_from_bytes (msg, "text/plain", body);
		reply = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 415);
	}
	/* too large */
	{
		g_autofree gchar *big = g_strnfill (200000, ' ');
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", big, &status, NULL);
		g_assert_cmpuint (status, ==, 413);
	}
	/* a 20 MB chunked body (no Content-Length to refuse it by): 413, and
	 * the daemon does not keep it */
	{
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
		g_autofree gchar *auth = g_strconcat ("Bearer ", fleet->token1, NULL);
		gsize size = 20 * 1024 * 1024;
		g_autofree gchar *junk = g_malloc (size);
		g_autoptr(GInputStream) stream = NULL;
		g_autoptr(GBytes) reply = NULL;
		guint64 rss_before = daemon_rss_kib (fleet->fleetd), rss_after;

		memset (junk, ' ', size);
		stream = g_memory_input_stream_new_from_data (junk, (gssize)size, NULL);
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		soup_message_set_request_body (msg, "application/json", stream, -1);
		reply = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 413);
		rss_after = daemon_rss_kib (fleet->fleetd);
		g_test_message ("ppn-fleetd RSS %" G_GUINT64_FORMAT " KiB before, %" G_GUINT64_FORMAT " KiB after",
				rss_before, rss_after);
#if defined(__SANITIZE_ADDRESS__)
		/* AddressSanitizer keeps freed memory in quarantine: RSS says nothing */
		(void)rss_after;
#else
		g_assert_cmpuint (rss_after, <, rss_before + 8 * 1024);
#endif
	}
	/* unknown endpoint, wrong method */
	{
		g_autoptr(JsonNode) r1 = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/nope", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) r2 = ppn_test_fleet_call (fleet, fleet->token1, "PUT", "/v1/vms", "{}", &status, NULL);
		g_assert_cmpuint (status, ==, 405);
	}
	g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 0);
	/* still alive and working */
	{
		g_autofree gchar *id = create_vm (fleet, fleet->token1, "after-abuse");
		g_assert_nonnull (id);
	}
}

static void
test_quota (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (2);
	g_autofree gchar *a = create_vm (fleet, fleet->token1, "q1");
	g_autofree gchar *b = create_vm (fleet, fleet->token1, "q2");
	g_autofree gchar *path = g_strconcat ("/v1/vms/", a, NULL);
	g_autofree gchar *raw = NULL;
	guint status = 0;
	g_autoptr(JsonNode) over = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							"{\"name\":\"q3\",\"image\":\"test-guest\"}", &status, &raw);

	g_assert_cmpuint (status, ==, 403);
	g_assert_cmpstr (error_code (over), ==, "quota_exceeded");
	g_assert_nonnull (strstr (raw, "2"));
	/* bob has a quota of his own */
	{
		g_autofree gchar *c = create_vm (fleet, fleet->token2, "q1");
		g_assert_nonnull (c);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	{
		g_autofree gchar *d = create_vm (fleet, fleet->token1, "q3");
		g_assert_nonnull (d);
	}
}

/* ownership survives a restart of ppn-fleetd */
static void
test_restart (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	g_autofree gchar *id = create_vm (fleet, fleet->token1, "keep");
	g_autofree gchar *path = g_strconcat ("/v1/vms/", id, NULL);
	g_autoptr(GError) error = NULL;
	guint status = 0;

	ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
	ppn_test_fleet_start_fleetd (fleet, &error);
	g_assert_no_error (error);
	{
		/* restored before the first request: no waiting for a heartbeat */
		g_autoptr(JsonNode) shown = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 200);
		g_assert_cmpstr (json_object_get_string_member (obj (shown), "state"), ==, "running");
	}
	{
		g_autoptr(JsonNode) other = ppn_test_fleet_call (fleet, fleet->token2, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) quota = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (obj (quota), "used"), ==, 1);
	}
	/* the agent's next heartbeat reaches the new fleetd: delete works */
	ppn_test_fleet_wait_node (fleet, 30, &error);
	g_assert_no_error (error);
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
}

/* with http-keep-alive=yes a connection carries more than one request:
 * the tenant API answers without Connection: close, and the mesh still
 * takes the agent's heartbeats that come on one kept-alive connection
 * (their certificate is verified again), so the node stays alive */
static void
test_keep_alive (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4, .node_timeout = 3,
				    .fleet_extra = "http-keep-alive=yes"};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *url = g_strconcat (fleet->url, "/v1/quota", NULL);
	g_autofree gchar *auth = g_strconcat ("Bearer ", fleet->token1, NULL);
	g_autofree gchar *id = NULL;

	for (guint i = 0; i < 2; i++) {
		g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
		g_autoptr(GBytes) body = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		body = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
		g_assert_null (soup_message_headers_get_one (soup_message_get_response_headers (msg), "Connection"));
	}
	/* heartbeats every second for longer than node-timeout */
	g_usleep (5 * G_USEC_PER_SEC);
	id = create_vm (fleet, fleet->token1, "kept");
	g_assert_nonnull (id);
}

/* a tenant's flood is bounded (429 with Retry-After past max-inflight),
 * and another tenant is not turned away by it */
static void
test_flood (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 100, .fleet_extra = "max-inflight=3"};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autoptr(PpnTestBurst) alice = NULL;
	g_autoptr(PpnTestBurst) bob = NULL;
	const gchar *pid = g_subprocess_get_identifier (fleet->agentd);
	gint64 deadline;

	/* the node stops answering: creates wait for it, and pile up */
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGSTOP);
	alice = ppn_test_burst_start (fleet, fleet->token1, "flood", 10);
	deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
	while (g_atomic_int_get ((gint *)&alice->done) < 7 && g_get_monotonic_time () < deadline)
		g_usleep (20000);
	bob = ppn_test_burst_start (fleet, fleet->token2, "calm", 1);
	g_usleep (G_USEC_PER_SEC);
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGCONT);
	ppn_test_burst_join (alice);
	ppn_test_burst_join (bob);
	g_test_message ("alice: %u created, %u told to retry; bob: %u created", alice->created, alice->too_many,
			bob->created);
	g_assert_cmpuint (alice->created, ==, 3);
	g_assert_cmpuint (alice->too_many, ==, 7);
	g_assert_cmpuint (bob->created, ==, 1);
}

static void
write_tenants (PpnTestFleet *fleet, guint alice_max, guint bob_max)
{
	g_autofree gchar *h1 = ppn_token_hash (fleet->token1);
	g_autofree gchar *h2 = ppn_token_hash (fleet->token2);
	g_autofree gchar *contents = g_strdup_printf ("[tenant alice]\ntoken-hash=%s\nmax-vms=%u\n\n"
						      "[tenant bob]\ntoken-hash=%s\nmax-vms=%u\n",
						      h1, alice_max, h2, bob_max);
	g_autofree gchar *path = g_build_filename (fleet->dir, "tenants.conf", NULL);
	g_autoptr(GError) error = NULL;

	g_file_set_contents (path, contents, -1, &error);
	g_assert_no_error (error);
	g_subprocess_send_signal (fleet->fleetd, SIGHUP);
	g_usleep (500000);
}

/* max-vms changed in the tenants file applies to the next create after
 * SIGHUP; lowering it below usage stops creates and touches no VM */
static void
test_quota_reload (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (2);
	g_autofree gchar *a = create_vm (fleet, fleet->token1, "r1");
	g_autofree gchar *b = create_vm (fleet, fleet->token1, "r2");
	guint status = 0;

	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							     "{\"name\":\"r3\",\"image\":\"test-guest\"}", &status, NULL);
		g_assert_cmpuint (status, ==, 403);
	}
	write_tenants (fleet, 3, 2);
	{
		g_autofree gchar *c = create_vm (fleet, fleet->token1, "r3");
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (obj (q), "max_vms"), ==, 3);
		g_assert_cmpint (json_object_get_int_member (obj (q), "used"), ==, 3);
	}
	write_tenants (fleet, 1, 2);
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							     "{\"name\":\"r4\",\"image\":\"test-guest\"}", &status, NULL);
		g_assert_cmpuint (status, ==, 403);
	}
	g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 3);
	/* a broken file keeps the tenants the fleet had */
	{
		g_autofree gchar *path = g_build_filename (fleet->dir, "tenants.conf", NULL);
		g_file_set_contents (path, "[tenant alice]\nmax-vms=oops\n", -1, NULL);
		g_subprocess_send_signal (fleet->fleetd, SIGHUP);
		g_usleep (500000);
		g_assert_cmpuint (list_len (fleet, fleet->token1), ==, 3);
	}
}

/* case 02: creates fired at the same instant never exceed the quota */
static void
test_quota_race (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (2);
	guint status = 0;

	for (guint round = 0; round < 5; round++) {
		g_autofree gchar *p1 = g_strdup_printf ("race%u-", round);
		g_autofree gchar *p2 = g_strdup_printf ("more%u-", round);
		g_autoptr(PpnTestBurst) first = ppn_test_burst_start (fleet, fleet->token1, p1, 20);
		g_autoptr(PpnTestBurst) again = NULL;
		g_autofree gchar *path = NULL;

		ppn_test_burst_join (first);
		g_test_message ("round %u: %u created, %u over quota, %u other", round, first->created, first->quota,
				first->other);
		g_assert_cmpuint (first->created, ==, 2);
		g_assert_cmpuint (first->quota, ==, 18);
		g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 2);
		/* one slot freed: exactly one more fits */
		path = g_strconcat ("/v1/vms/", (const gchar *)g_ptr_array_index (first->ids, 0), NULL);
		{
			g_autoptr(JsonNode) d = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
			g_assert_cmpuint (status, ==, 204);
		}
		again = ppn_test_burst_start (fleet, fleet->token1, p2, 5);
		ppn_test_burst_join (again);
		g_assert_cmpuint (again->created, ==, 1);
		g_assert_cmpuint (again->quota, ==, 4);
		g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 2);
		/* clean for the next round */
		for (guint i = 1; i < first->ids->len; i++) {
			g_autofree gchar *p = g_strconcat ("/v1/vms/", (const gchar *)g_ptr_array_index (first->ids, i), NULL);
			g_autoptr(JsonNode) d = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", p, NULL, &status, NULL);
			g_assert_cmpuint (status, ==, 204);
		}
		{
			g_autofree gchar *p = g_strconcat ("/v1/vms/", (const gchar *)g_ptr_array_index (again->ids, 0), NULL);
			g_autoptr(JsonNode) d = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", p, NULL, &status, NULL);
			g_assert_cmpuint (status, ==, 204);
		}
		g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 0);
	}
}

/* a node that does not answer in agent-timeout: the create fails, its
 * slot is free at once, and the domain the node made late is reaped */
static void
test_agent_timeout (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 1, .fleet_extra = "agent-timeout=2"};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new (&opts, &error);
	const gchar *pid;
	guint status = 0;
	gint64 t0, deadline;

	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);

	pid = g_subprocess_get_identifier (fleet->agentd);
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGSTOP);
	t0 = g_get_monotonic_time ();
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							     "{\"name\":\"late\",\"image\":\"test-guest\"}", &status, NULL);
		g_assert_cmpuint (status, ==, 503);
	}
	g_assert_cmpint (g_get_monotonic_time () - t0, <, 10 * G_USEC_PER_SEC);
	{
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (obj (q), "used"), ==, 0);
	}
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGCONT);
	/* whatever the node did with the request it got late, nothing of it
	 * stays running */
	deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
	while (ppn_test_node_domains_of (fleet, "alice") != 0 && g_get_monotonic_time () < deadline)
		g_usleep (200000);
	g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 0);
	{
		g_autofree gchar *id = create_vm (fleet, fleet->token1, "on-time");
		g_assert_nonnull (id);
	}
}

static guint
open_fds (GSubprocess *proc)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/fd", g_subprocess_get_identifier (proc));
	g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
	guint n = 0;

	g_assert_nonnull (dir);
	while (g_dir_read_name (dir) != NULL)
		n++;
	return n;
}

/* connections closed by clients are closed by the daemons too: neither
 * the tenant API nor the mesh (heartbeats) nor the agent keeps them */
static void
test_no_fd_leak (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (4);
	guint fleet_before, agent_before, fleet_after, agent_after;
	guint status = 0;

	g_usleep (2 * G_USEC_PER_SEC);
	fleet_before = open_fds (fleet->fleetd);
	agent_before = open_fds (fleet->agentd);
	for (guint i = 0; i < 50; i++) {
		/* a fresh client each time, as a script would be */
		g_autoptr(SoupSession) one = soup_session_new_with_options (
			"tls-database", soup_session_get_tls_database (fleet->session), NULL);
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/quota", NULL);
		g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
		g_autofree gchar *auth = g_strconcat ("Bearer ", i % 2 == 0 ? fleet->token1 : "nope", NULL);
		g_autoptr(GBytes) reply = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		reply = soup_session_send_and_read (one, msg, NULL, NULL);
		g_assert_nonnull (reply);
	}
	{
		/* and a create and delete, which talk to the agent */
		g_autofree gchar *id = create_vm (fleet, fleet->token1, "fds");
		g_autofree gchar *path = g_strconcat ("/v1/vms/", id, NULL);
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	/* several heartbeats (one a second) go by */
	g_usleep (4 * G_USEC_PER_SEC);
	fleet_after = open_fds (fleet->fleetd);
	agent_after = open_fds (fleet->agentd);
	g_test_message ("ppn-fleetd fds %u -> %u, ppn-agentd fds %u -> %u", fleet_before, fleet_after, agent_before,
			agent_after);
	g_assert_cmpuint (fleet_after, <=, fleet_before + 4);
	g_assert_cmpuint (agent_after, <=, agent_before + 4);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/fleet-api/lifecycle", test_lifecycle);
	g_test_add_func ("/fleet-api/cross-tenant", test_cross_tenant);
	g_test_add_func ("/fleet-api/pagination", test_pagination);
	g_test_add_func ("/fleet-api/auth", test_auth);
	g_test_add_func ("/fleet-api/bad-requests", test_bad_requests);
	g_test_add_func ("/fleet-api/quota", test_quota);
	g_test_add_func ("/fleet-api/restart", test_restart);
	g_test_add_func ("/fleet-api/flood", test_flood);
	g_test_add_func ("/fleet-api/keep-alive", test_keep_alive);
	g_test_add_func ("/fleet-api/quota-reload", test_quota_reload);
	g_test_add_func ("/fleet-api/quota-race", test_quota_race);
	g_test_add_func ("/fleet-api/agent-timeout", test_agent_timeout);
	g_test_add_func ("/fleet-api/no-fd-leak", test_no_fd_leak);
	return g_test_run ();
}
