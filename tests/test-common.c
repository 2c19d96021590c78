#include "config.h"

#define G_LOG_DOMAIN "test-common"

#include <gio/gio.h>
#include <string.h>
#include <sys/stat.h>

#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-json.h"
#include "ppn-tls.h"
#include "ppn-token.h"

/* ---- config ------------------------------------------------------------ */

static void
test_config_parse_address (void)
{
	static const struct {
		const gchar *input;
		const gchar *host; /* NULL: refused */
		guint16 port;
	} cases[] = {
		{"127.0.0.1:8443", "127.0.0.1", 8443},
		{"[::1]:9443", "::1", 9443},
		{"localhost:1", "localhost", 1},
		{"0.0.0.0:0", "0.0.0.0", 0},
		{"127.0.0.1", NULL, 0},
		{"127.0.0.1:", NULL, 0},
		{":8443", NULL, 0},
		{"::1:8443", NULL, 0},
		{"[::1]8443", NULL, 0},
		{"[::1", NULL, 0},
		{"[]:80", NULL, 0},
		{"host:65536", NULL, 0},
		{"host:-1", NULL, 0},
		{"host:80x", NULL, 0},
		{"junk", NULL, 0},
		{"", NULL, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *host = NULL;
		guint16 port = 0;
		g_autoptr(GError) error = NULL;
		gboolean ok = ppn_config_parse_address (cases[i].input, &host, &port, &error);

		if (cases[i].host == NULL) {
			if (ok)
				g_test_fail_printf ("'%s': expected refusal, got host '%s' port %u", cases[i].input,
						    host, port);
			else
				g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
			continue;
		}
		if (!ok) {
			g_test_fail_printf ("'%s': expected %s:%u, got error %s", cases[i].input, cases[i].host,
					    cases[i].port, error->message);
			continue;
		}
		g_assert_cmpstr (host, ==, cases[i].host);
		g_assert_cmpuint (port, ==, cases[i].port);
	}
}

static void
test_config_parse_port_range (void)
{
	static const struct {
		const gchar *input;
		gboolean ok;
		guint16 first, last;
	} cases[] = {
		{"20000-20999", TRUE, 20000, 20999},
		{"1-65535", TRUE, 1, 65535},
		{"80-80", TRUE, 80, 80},
		{" 10 - 20 ", TRUE, 10, 20},
		{"20-10", FALSE, 0, 0},
		{"0-10", FALSE, 0, 0},
		{"10-65536", FALSE, 0, 0},
		{"10", FALSE, 0, 0},
		{"10-20-30", FALSE, 0, 0},
		{"a-b", FALSE, 0, 0},
		{"-", FALSE, 0, 0},
		{"", FALSE, 0, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		guint16 first = 0, last = 0;
		g_autoptr(GError) error = NULL;
		gboolean ok = ppn_config_parse_port_range (cases[i].input, &first, &last, &error);

		if (ok != cases[i].ok) {
			g_test_fail_printf ("'%s': expected %s, got %s", cases[i].input,
					    cases[i].ok ? "success" : "refusal", ok ? "success" : error->message);
			continue;
		}
		if (ok) {
			g_assert_cmpuint (first, ==, cases[i].first);
			g_assert_cmpuint (last, ==, cases[i].last);
		} else {
			g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		}
	}
}

static GKeyFile *
load_keyfile (const gchar *data)
{
	GKeyFile *kf = g_key_file_new ();
	g_autoptr(GError) error = NULL;

	g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, &error);
	g_assert_no_error (error);
	return kf;
}

static void
test_config_check_keys (void)
{
	static const gchar *const groups[] = {"fleet", "tls", NULL};
	static const gchar *const fleet_keys[] = {"listen", "max-vcpus", NULL};
	static const gchar *const tls_keys[] = {"cert", "key", NULL};
	static const gchar *const *const keys[] = {fleet_keys, tls_keys};
	g_autoptr(GKeyFile) good = load_keyfile ("[fleet]\nlisten=127.0.0.1:8443\n[tls]\ncert=a\n");
	g_autoptr(GKeyFile) bad_group = load_keyfile ("[fleet]\nlisten=x\n[tsl]\ncert=a\n");
	g_autoptr(GKeyFile) bad_key = load_keyfile ("[fleet]\nlisten=x\nmax-vcpu=4\n");
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_config_check_keys (good, "good.conf", groups, keys, &error));
	g_assert_no_error (error);

	g_assert_false (ppn_config_check_keys (bad_group, "bad.conf", groups, keys, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "[tsl]"));
	g_assert_nonnull (strstr (error->message, "bad.conf"));
	g_clear_error (&error);

	g_assert_false (ppn_config_check_keys (bad_key, "bad.conf", groups, keys, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "max-vcpu"));
}

static void
test_config_get_path (void)
{
	g_autoptr(GKeyFile) kf = load_keyfile ("[tls]\ncert=certs/fleet.pem\nca=/etc/ppn/ca.pem\nempty=  \n");
	g_autofree gchar *rel = ppn_config_get_path (kf, "/etc/ppn/fleet.conf", "tls", "cert", NULL);
	g_autofree gchar *abs = ppn_config_get_path (kf, "/etc/ppn/fleet.conf", "tls", "ca", NULL);
	g_autofree gchar *fallback = ppn_config_get_path (kf, "/srv/ppn/fleet.conf", "tls", "key", "key.pem");
	g_autofree gchar *empty = ppn_config_get_path (kf, "/srv/ppn/fleet.conf", "tls", "empty", NULL);
	g_autofree gchar *dotdot = NULL;
	g_autoptr(GKeyFile) kf2 = load_keyfile ("[tls]\ncert=../x/./c.pem\n");

	g_assert_cmpstr (rel, ==, "/etc/ppn/certs/fleet.pem");
	g_assert_cmpstr (abs, ==, "/etc/ppn/ca.pem");
	g_assert_cmpstr (fallback, ==, "/srv/ppn/key.pem");
	g_assert_null (empty);
	dotdot = ppn_config_get_path (kf2, "/etc/ppn/fleet.conf", "tls", "cert", NULL);
	g_assert_cmpstr (dotdot, ==, "/etc/x/c.pem");
}

static void
test_config_get_uint (void)
{
	g_autoptr(GKeyFile) kf = load_keyfile ("[a]\nok=8\nlow=0\nhigh=9\nneg=-1\njunk=8x\nhuge=99999999999999999999\n");
	g_autoptr(GError) error = NULL;
	guint64 v = 0;
	static const gchar *const refused[] = {"low", "high", "neg", "junk", "huge"};

	g_assert_true (ppn_config_get_uint (kf, "a", "ok", 4, 1, 8, &v, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (v, ==, 8);
	g_assert_true (ppn_config_get_uint (kf, "a", "missing", 4, 1, 8, &v, &error));
	g_assert_cmpuint (v, ==, 4);
	for (guint i = 0; i < G_N_ELEMENTS (refused); i++) {
		v = 12345;
		if (ppn_config_get_uint (kf, "a", refused[i], 4, 1, 8, &v, &error)) {
			g_test_fail_printf ("key %s: expected refusal (range 1-8), got %" G_GUINT64_FORMAT,
					    refused[i], v);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_assert_nonnull (strstr (error->message, refused[i]));
		g_assert_cmpuint (v, ==, 12345);
		g_clear_error (&error);
	}
}

/* ---- JSON -------------------------------------------------------------- */

static JsonNode *
parse (const gchar *data, GError **error)
{
	return ppn_json_parse_object (data, strlen (data), PPN_JSON_MAX_DEPTH, error);
}

#define AUTO_LEN G_MAXSIZE

static void
assert_refused (const gchar *what, const gchar *data, gsize len, const gchar *needle)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node =
		ppn_json_parse_object (data, len == AUTO_LEN ? strlen (data) : len, PPN_JSON_MAX_DEPTH, &error);

	if (node != NULL) {
		g_test_fail_printf ("%s: expected refusal, got a parsed object", what);
		return;
	}
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	if (needle != NULL && strstr (error->message, needle) == NULL)
		g_test_fail_printf ("%s: expected a message naming '%s', got '%s'", what, needle, error->message);
}

static void
test_json_deep_nesting (void)
{
	const gsize n = 200000;
	g_autofree gchar *data = g_malloc (n + 1);
	gint64 start;
	g_autoptr(GError) error = NULL;

	memset (data, '[', n);
	data[n] = '\0';
	start = g_get_monotonic_time ();
	assert_refused ("200000 x [", data, n, "nested");
	/* inside an object too */
	data[0] = '{';
	assert_refused ("{ then [", data, n, NULL);
	g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
	/* exactly the limit passes the precheck, one more does not */
	g_assert_true (ppn_json_precheck ("[[[]]]", 6, 3, &error));
	g_assert_no_error (error);
	g_assert_false (ppn_json_precheck ("[[[[]]]]", 8, 3, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

static void
test_json_refused (void)
{
	static const gchar nul[] = "{\"name\":\"a\0b\"}";

	assert_refused ("duplicated key", "{\"vcpus\":1,\"vcpus\":64}", AUTO_LEN, "vcpus");
	assert_refused ("duplicated key, nested", "{\"a\":{\"b\":1,\"b\":2}}", AUTO_LEN, "'b'");
	assert_refused ("duplicated key after a nested value", "{\"a\":[1,{\"x\":1}],\"a\":2}", AUTO_LEN, "'a'");
	assert_refused ("escaped key", "{\"vc\\u0070us\":64}", AUTO_LEN, "escape");
	assert_refused ("escaped duplicate", "{\"vcpus\":1,\"vcpu\\u0073\":64}", AUTO_LEN, "escape");
	assert_refused ("NUL byte", nul, sizeof nul - 1, NULL);
	/* json-glib would end the string at the escaped NUL: "a" */
	assert_refused ("escaped NUL", "{\"name\":\"a\\u0000</name>\"}", AUTO_LEN, NULL);
	assert_refused ("invalid UTF-8", "{\"name\":\"\xff\xfe\"}", AUTO_LEN, "UTF-8");
	assert_refused ("overlong UTF-8", "{\"name\":\"\xc0\xaf\"}", AUTO_LEN, "UTF-8");
	assert_refused ("array", "[1,2]", AUTO_LEN, "object");
	assert_refused ("string", "\"x\"", AUTO_LEN, "object");
	assert_refused ("number", "42", AUTO_LEN, "object");
	assert_refused ("not JSON", "name=web1", AUTO_LEN, "JSON");
	assert_refused ("truncated", "{\"name\":", AUTO_LEN, "JSON");
	assert_refused ("unterminated string", "{\"name\":\"abc", AUTO_LEN, "JSON");
	assert_refused ("empty", "", AUTO_LEN, NULL);
}

static void
test_json_accepted (void)
{
	g_autoptr(GError) error = NULL;
	/* the same key in sibling objects, keys in values, escapes in values */
	g_autoptr(JsonNode) node = parse ("{\"port_forwards\":[{\"guest_port\":80},{\"guest_port\":81}],"
					  "\"name\":\"vcpus\",\"image\":\"a\\\"b\",\"x\":{\"name\":1}}",
					  &error);
	JsonObject *obj;
	const gchar *image = NULL;

	g_assert_no_error (error);
	g_assert_nonnull (node);
	obj = json_node_get_object (node);
	g_assert_true (ppn_json_get_string (obj, "image", TRUE, &image, &error));
	g_assert_cmpstr (image, ==, "a\"b");
}

static void
test_json_get_int (void)
{
	static const struct {
		const gchar *literal;
		gboolean ok;
		gint64 value;
	} cases[] = {
		{"512", TRUE, 512},
		{"64", TRUE, 64},
		{"16384", TRUE, 16384},
		{"18446744073709551616", FALSE, 0},
		{"-18446744073709551360", FALSE, 0}, /* json-glib would wrap it to 256 */
		{"18446744073709551872", FALSE, 0},
		{"9223372036854775808", FALSE, 0},
		{"99999999999999999999999999", FALSE, 0},
		{"1e400", FALSE, 0},
		{"1e2", FALSE, 0},
		{"-1", FALSE, 0},
		{"0", FALSE, 0},
		{"63", FALSE, 0},
		{"16385", FALSE, 0},
		{"2.5", FALSE, 0},
		{"256.0", FALSE, 0},
		{"\"512\"", FALSE, 0},
		{"true", FALSE, 0},
		{"[512]", FALSE, 0},
		{"{}", FALSE, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *data = g_strdup_printf ("{\"name\":\"a\",\"memory_mib\":%s}", cases[i].literal);
		g_autoptr(GError) error = NULL;
		g_autoptr(JsonNode) node = parse (data, &error);
		gint64 v = 256;
		gboolean ok = node != NULL && ppn_json_get_int (json_node_get_object (node), "memory_mib", TRUE, 64,
								16384, &v, &error);

		if (ok != cases[i].ok) {
			g_test_fail_printf ("memory_mib %s: expected %s, got %s (value %" G_GINT64_FORMAT ")",
					    cases[i].literal, cases[i].ok ? "success" : "refusal",
					    ok ? "success" : error->message, v);
			continue;
		}
		if (ok) {
			g_assert_cmpint (v, ==, cases[i].value);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		if (strstr (error->message, "memory_mib") == NULL)
			g_test_fail_printf ("memory_mib %s: expected a message naming the field, got '%s'",
					    cases[i].literal, error->message);
		g_assert_cmpint (v, ==, 256);
	}
}

static void
test_json_get_int_missing (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = parse ("{\"vcpus\":null}", &error);
	JsonObject *obj = json_node_get_object (node);
	gint64 v = 1;

	g_assert_true (ppn_json_get_int (obj, "memory_mib", FALSE, 64, 16384, &v, &error));
	g_assert_cmpint (v, ==, 1);
	/* an explicit null is a wrong type, not the default */
	g_assert_false (ppn_json_get_int (obj, "vcpus", FALSE, 1, 8, &v, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "vcpus"));
	g_assert_cmpint (v, ==, 1);
	g_clear_error (&error);
	g_assert_false (ppn_json_get_int (obj, "memory_mib", TRUE, 64, 16384, &v, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "memory_mib"));
}

static void
test_json_check_members (void)
{
	static const gchar *const allowed[] = {"name", "image", "vcpus", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) good = parse ("{\"name\":\"a\",\"vcpus\":1}", &error);
	g_autoptr(JsonNode) bad = parse ("{\"name\":\"a\",\"tenant\":\"bob\"}", &error);

	g_assert_no_error (error);
	g_assert_true (ppn_json_check_members (json_node_get_object (good), NULL, allowed, &error));
	g_assert_false (ppn_json_check_members (json_node_get_object (bad), NULL, allowed, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "'tenant'"));
	g_clear_error (&error);
	g_assert_false (ppn_json_check_members (json_node_get_object (bad), "vm.", allowed, &error));
	g_assert_nonnull (strstr (error->message, "'vm.tenant'"));
}

/* ---- forwards ---------------------------------------------------------- */

static GPtrArray *
forwards_from (const gchar *array_json, guint max, gboolean with_host, GError **error)
{
	g_autofree gchar *data = g_strdup_printf ("{\"port_forwards\":%s}", array_json);
	g_autoptr(JsonNode) node = parse (data, error);
	JsonArray *array = NULL;

	g_assert_no_error (*error);
	g_assert_true (ppn_json_get_array (json_node_get_object (node), "port_forwards", TRUE, &array, error));
	return ppn_forwards_from_json (array, max, with_host, error);
}

static void
test_forwards_refused (void)
{
	static const struct {
		const gchar *json;
		const gchar *needle;
	} cases[] = {
		{"[{\"guest_port\":0}]", "guest_port"},
		{"[{\"guest_port\":65536}]", "guest_port"},
		{"[{\"guest_port\":-1}]", "guest_port"},
		{"[{\"guest_port\":\"22\"}]", "guest_port"},
		{"[{\"guest_port\":22.0}]", "guest_port"},
		{"[{\"proto\":\"tcp\"}]", "guest_port"},
		{"[{\"guest_port\":22,\"proto\":\"sctp\"}]", "proto"},
		{"[{\"guest_port\":22,\"proto\":\"TCP\"}]", "proto"},
		{"[{\"guest_port\":22,\"proto\":6}]", "proto"},
		{"[{\"guest_port\":22},{\"guest_port\":22,\"proto\":\"tcp\"}]", "twice"},
		{"[{\"guest_port\":22,\"host_port\":22}]", "host_port"},
		{"[22]", "port_forwards[0]"},
		{"[{\"guest_port\":1},{\"guest_port\":2},{\"guest_port\":3}]", "at most 2"},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) fwds = forwards_from (cases[i].json, 2, FALSE, &error);

		if (fwds != NULL) {
			g_test_fail_printf ("%s: expected refusal, got %u forwards", cases[i].json, fwds->len);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		if (strstr (error->message, cases[i].needle) == NULL)
			g_test_fail_printf ("%s: expected a message with '%s', got '%s'", cases[i].json,
					    cases[i].needle, error->message);
	}
}

static void
test_forwards_round_trip (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) fwds =
		forwards_from ("[{\"guest_port\":80},{\"guest_port\":80,\"proto\":\"udp\"},{\"guest_port\":65535,"
			       "\"proto\":\"tcp\"}]",
			       PPN_MAX_FORWARDS_DEFAULT, FALSE, &error);
	g_autoptr(JsonNode) json = NULL;
	g_autoptr(GPtrArray) again = NULL;
	g_autoptr(GPtrArray) placed = NULL;
	g_autofree gchar *text = NULL;
	PpnForward *f;

	g_assert_no_error (error);
	g_assert_cmpuint (fwds->len, ==, 3);
	f = g_ptr_array_index (fwds, 0);
	g_assert_cmpuint (f->guest_port, ==, 80);
	g_assert_cmpstr (f->proto, ==, "tcp"); /* the default */

	json = ppn_forwards_to_json (fwds, FALSE);
	text = ppn_json_to_data (json, NULL);
	g_assert_cmpstr (text, ==,
			 "[{\"guest_port\":80,\"proto\":\"tcp\"},{\"guest_port\":80,\"proto\":\"udp\"},"
			 "{\"guest_port\":65535,\"proto\":\"tcp\"}]");
	again = ppn_forwards_from_json (json_node_get_array (json), PPN_MAX_FORWARDS_DEFAULT, FALSE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (again->len, ==, 3);

	/* with the host side */
	for (guint i = 0; i < fwds->len; i++) {
		f = g_ptr_array_index (fwds, i);
		f->host_address = g_strdup ("127.0.0.1");
		f->host_port = (guint16)(20000 + i);
	}
	g_clear_pointer (&json, json_node_unref);
	json = ppn_forwards_to_json (fwds, TRUE);
	placed = ppn_forwards_from_json (json_node_get_array (json), PPN_MAX_FORWARDS_DEFAULT, TRUE, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < fwds->len; i++) {
		PpnForward *a = g_ptr_array_index (fwds, i);
		PpnForward *b = g_ptr_array_index (placed, i);
		g_assert_cmpuint (a->guest_port, ==, b->guest_port);
		g_assert_cmpstr (a->proto, ==, b->proto);
		g_assert_cmpstr (a->host_address, ==, b->host_address);
		g_assert_cmpuint (a->host_port, ==, b->host_port);
	}
	/* a host side without its address is refused */
	g_clear_pointer (&json, json_node_unref);
	json = ppn_forwards_to_json (fwds, FALSE);
	g_assert_null (ppn_forwards_from_json (json_node_get_array (json), PPN_MAX_FORWARDS_DEFAULT, TRUE, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

/* ---- names and ids ----------------------------------------------------- */

static void
test_names (void)
{
	static const gchar *const good[] = {"web1", "a", "A-b_c.d", "0x", NULL};
	g_autofree gchar *long_name = g_strnfill (10000, 'a');
	g_autofree gchar *max_name = g_strnfill (PPN_NAME_MAX, 'a');
	g_autofree gchar *over_name = g_strnfill (PPN_NAME_MAX + 1, 'a');
	const gchar *const bad[] = {
		"a</name><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><name>b",
		"a&b", "a'b", "a\"b", "a<b", "a>b", long_name, over_name, "caf\xc3\xa9", "\xd0\xb2\xd0\xbc",
		"a b", "a/b", "../etc", ".hidden", "-rf", "_x", "a\nb", "a\tb", "a;b", "a$b", "", NULL};
	g_autoptr(GError) error = NULL;

	for (guint i = 0; good[i] != NULL; i++) {
		if (!ppn_name_validate ("name", good[i], &error)) {
			g_test_fail_printf ("'%s': expected a valid name, got '%s'", good[i], error->message);
			g_clear_error (&error);
		}
	}
	g_assert_true (ppn_name_validate ("name", max_name, &error));
	for (guint i = 0; bad[i] != NULL; i++) {
		if (ppn_name_validate ("name", bad[i], &error)) {
			g_test_fail_printf ("'%.80s': expected refusal, got a valid name", bad[i]);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_assert_nonnull (strstr (error->message, "'name'"));
		g_clear_error (&error);
	}
	g_assert_false (ppn_name_validate ("name", NULL, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

static void
test_vm_ids (void)
{
	static const gchar *const bad[] = {"", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF",
					   "0123456789abcdeg", "../../../../etc/", "0123456789abcd\n",
					   "0123456789abcd%2f", NULL};
	g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_vm_id_validate ("0123456789abcdef", &error));
	g_assert_no_error (error);
	for (guint i = 0; bad[i] != NULL; i++) {
		if (ppn_vm_id_validate (bad[i], &error)) {
			g_test_fail_printf ("'%s': expected refusal, got a valid id", bad[i]);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_clear_error (&error);
	}
	g_assert_false (ppn_vm_id_validate (NULL, &error));
	g_clear_error (&error);
	for (guint i = 0; i < 1000; i++) {
		gchar *id = ppn_vm_id_new ();
		if (!ppn_vm_id_validate (id, &error))
			g_test_fail_printf ("ppn_vm_id_new gave '%s', which is not a valid id", id);
		g_clear_error (&error);
		if (!g_hash_table_add (seen, id))
			g_test_fail_printf ("ppn_vm_id_new gave '%s' twice in 1000", id);
	}
}

/* ---- tokens ------------------------------------------------------------ */

static void
test_tokens (void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < 200; i++) {
		gchar *token = ppn_token_new (&error);
		g_assert_no_error (error);
		g_assert_true (g_str_has_prefix (token, PPN_TOKEN_PREFIX));
		/* 32 bytes in base64url without padding: 43 characters */
		g_assert_cmpuint (strlen (token), ==, strlen (PPN_TOKEN_PREFIX) + 43);
		for (const gchar *p = token + strlen (PPN_TOKEN_PREFIX); *p != '\0'; p++) {
			if (!(g_ascii_isalnum (*p) || *p == '-' || *p == '_'))
				g_test_fail_printf ("token '%s': expected base64url, got '%c'", token, *p);
		}
		if (!g_hash_table_add (seen, token))
			g_test_fail_printf ("ppn_token_new gave the same token twice");
	}
}

static void
test_token_hash (void)
{
	/* printf ppn_CANARY | sha256sum */
	g_autofree gchar *hash = ppn_token_hash ("ppn_CANARY");
	g_autofree gchar *empty = ppn_token_hash ("");
	guint8 digest[PPN_TOKEN_DIGEST_LEN];
	guint8 other[PPN_TOKEN_DIGEST_LEN];
	g_autoptr(GError) error = NULL;
	static const gchar *const bad[] = {
		"",
		"sha256:",
		"sha1:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
		"sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		NULL};

	g_assert_cmpstr (hash, ==, "sha256:94a919e61b0b4c454e6fcf6469d864a5d8be253f29bdc6d68b9483d7126c8fef");
	g_assert_cmpstr (empty, ==, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	g_assert_true (ppn_token_hash_parse (hash, digest, &error));
	g_assert_no_error (error);
	g_assert_true (ppn_token_digest ("ppn_CANARY", other));
	g_assert_true (ppn_token_digest_equal (digest, other));
	g_assert_true (ppn_token_digest ("ppn_CANARZ", other));
	g_assert_false (ppn_token_digest_equal (digest, other));
	memcpy (other, digest, sizeof other);
	other[PPN_TOKEN_DIGEST_LEN - 1] ^= 1;
	g_assert_false (ppn_token_digest_equal (digest, other));
	other[PPN_TOKEN_DIGEST_LEN - 1] ^= 1;
	other[0] ^= 0x80;
	g_assert_false (ppn_token_digest_equal (digest, other));

	for (guint i = 0; bad[i] != NULL; i++) {
		if (ppn_token_hash_parse (bad[i], digest, &error)) {
			g_test_fail_printf ("'%s': expected refusal, got a parsed hash", bad[i]);
			continue;
		}
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_clear_error (&error);
	}
	g_assert_false (ppn_token_hash_parse (NULL, digest, &error));
}

/* ---- TLS --------------------------------------------------------------- */

typedef struct {
	gchar *dir;
} TmpFixture;

static void
tmp_setup (TmpFixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	fx->dir = g_dir_make_tmp ("test-common-XXXXXX", &error);
	g_assert_no_error (error);
}

static void
tmp_teardown (TmpFixture *fx, gconstpointer data)
{
	g_autoptr(GFile) dir = g_file_new_for_path (fx->dir);
	g_autoptr(GFileEnumerator) en = NULL;

	/* two levels at most */
	en = g_file_enumerate_children (dir, G_FILE_ATTRIBUTE_STANDARD_NAME, G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
					NULL, NULL);
	while (en != NULL) {
		GFileInfo *info = NULL;
		GFile *child = NULL;
		if (!g_file_enumerator_iterate (en, &info, &child, NULL, NULL) || info == NULL)
			break;
		if (g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY) {
			g_autoptr(GFileEnumerator) en2 = g_file_enumerate_children (
				child, G_FILE_ATTRIBUTE_STANDARD_NAME, G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
			while (en2 != NULL) {
				GFileInfo *info2 = NULL;
				GFile *child2 = NULL;
				if (!g_file_enumerator_iterate (en2, &info2, &child2, NULL, NULL) || info2 == NULL)
					break;
				g_file_delete (child2, NULL, NULL);
			}
		}
		g_file_delete (child, NULL, NULL);
	}
	g_file_delete (dir, NULL, NULL);
	g_free (fx->dir);
}

static guint
file_mode (const gchar *path)
{
	struct stat st;

	g_assert_cmpint (stat (path, &st), ==, 0);
	return st.st_mode & 07777;
}

static void
test_tls_chain (TmpFixture *fx, gconstpointer data)
{
	g_autofree gchar *ca_dir = g_build_filename (fx->dir, "ca", NULL);
	g_autofree gchar *other_dir = g_build_filename (fx->dir, "other", NULL);
	g_autofree gchar *ca_pem = g_build_filename (ca_dir, "ca.pem", NULL);
	g_autofree gchar *ca_key = g_build_filename (ca_dir, "ca-key.pem", NULL);
	g_autofree gchar *other_pem = g_build_filename (other_dir, "ca.pem", NULL);
	g_autofree gchar *cert_pem = g_build_filename (fx->dir, "agent.pem", NULL);
	g_autofree gchar *key_pem = g_build_filename (fx->dir, "agent-key.pem", NULL);
	g_autofree gchar *ca_before = NULL;
	g_autofree gchar *ca_after = NULL;
	static const gchar *const sans[] = {"127.0.0.1", "localhost", "::1", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsCertificate) cert = NULL;
	g_autoptr(GTlsDatabase) db = NULL;
	g_autoptr(GTlsDatabase) other_db = NULL;
	g_autoptr(GSocketConnectable) identity = g_network_address_new ("127.0.0.1", 0);
	g_autoptr(GSocketConnectable) wrong_identity = g_network_address_new ("example.com", 0);
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;
	GTlsCertificateFlags flags;

	g_assert_true (ppn_tls_ca_create (ca_dir, "test-ca", 30, &error));
	g_assert_no_error (error);
	g_assert_true (ppn_tls_ca_create (other_dir, "foreign-ca", 30, &error));
	g_assert_no_error (error);
	g_assert_cmphex (file_mode (ca_key), ==, 0600);
	g_assert_cmphex (file_mode (ca_dir), ==, 0700);

	/* an existing CA is never replaced */
	g_assert_true (g_file_get_contents (ca_pem, &ca_before, NULL, NULL));
	g_assert_false (ppn_tls_ca_create (ca_dir, "again", 30, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_CONFLICT);
	g_clear_error (&error);
	g_assert_true (g_file_get_contents (ca_pem, &ca_after, NULL, NULL));
	g_assert_cmpstr (ca_before, ==, ca_after);

	g_assert_true (ppn_tls_issue (ca_dir, PPN_TLS_ROLE_AGENT, "node1", sans, 30, cert_pem, key_pem, &error));
	g_assert_no_error (error);
	g_assert_cmphex (file_mode (key_pem), ==, 0600);
	g_assert_cmphex (file_mode (cert_pem), ==, 0644);

	cert = ppn_tls_load_certificate (cert_pem, key_pem, &error);
	g_assert_no_error (error);
	db = ppn_tls_load_ca (ca_pem, &error);
	g_assert_no_error (error);
	other_db = ppn_tls_load_ca (other_pem, &error);
	g_assert_no_error (error);

	flags = g_tls_database_verify_chain (db, cert, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER, identity, NULL,
					     G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmphex (flags, ==, 0);
	flags = g_tls_database_verify_chain (db, cert, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT, NULL, NULL,
					     G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmphex (flags, ==, 0);
	flags = g_tls_database_verify_chain (db, cert, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER, wrong_identity,
					     NULL, G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
	g_assert_cmphex (flags & G_TLS_CERTIFICATE_BAD_IDENTITY, ==, G_TLS_CERTIFICATE_BAD_IDENTITY);
	flags = g_tls_database_verify_chain (other_db, cert, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER, identity,
					     NULL, G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
	g_assert_cmphex (flags & G_TLS_CERTIFICATE_UNKNOWN_CA, ==, G_TLS_CERTIFICATE_UNKNOWN_CA);

	g_assert_true (ppn_tls_certificate_identity (cert, &role, &name, &error));
	g_assert_no_error (error);
	g_assert_cmpint (role, ==, PPN_TLS_ROLE_AGENT);
	g_assert_cmpstr (name, ==, "node1");
}

static void
test_tls_identity_of_ca (TmpFixture *fx, gconstpointer data)
{
	g_autofree gchar *ca_dir = g_build_filename (fx->dir, "ca", NULL);
	g_autofree gchar *ca_pem = g_build_filename (ca_dir, "ca.pem", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsCertificate) ca = NULL;
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;

	g_assert_true (ppn_tls_ca_create (ca_dir, "test-ca", 30, &error));
	ca = g_tls_certificate_new_from_file (ca_pem, &error);
	g_assert_no_error (error);
	/* the CA's own OU is "ca", not a role: it cannot act as a peer */
	g_assert_false (ppn_tls_certificate_identity (ca, &role, &name, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAUTHORIZED);
	g_assert_null (name);
}

static void
test_tls_roles (void)
{
	g_assert_cmpint (ppn_tls_role_from_string ("fleet"), ==, PPN_TLS_ROLE_FLEET);
	g_assert_cmpint (ppn_tls_role_from_string ("agent"), ==, PPN_TLS_ROLE_AGENT);
	g_assert_cmpint (ppn_tls_role_from_string ("operator"), ==, PPN_TLS_ROLE_OPERATOR);
	g_assert_cmpint (ppn_tls_role_from_string ("ca"), ==, PPN_TLS_ROLE_UNKNOWN);
	g_assert_cmpint (ppn_tls_role_from_string ("unknown"), ==, PPN_TLS_ROLE_UNKNOWN);
	g_assert_cmpint (ppn_tls_role_from_string (NULL), ==, PPN_TLS_ROLE_UNKNOWN);
	g_assert_cmpstr (ppn_tls_role_to_string (PPN_TLS_ROLE_AGENT), ==, "agent");
	g_assert_cmpstr (ppn_tls_role_to_string ((PpnTlsRole)42), ==, "unknown");
}

/* ---- errors ------------------------------------------------------------ */

static void
test_errors (void)
{
	static const struct {
		PpnError code;
		guint status;
		const gchar *str;
	} table[] = {
		{PPN_ERROR_INTERNAL, 500, "internal"},
		{PPN_ERROR_INVALID_REQUEST, 400, "invalid_request"},
		{PPN_ERROR_UNAUTHORIZED, 401, "unauthorized"},
		{PPN_ERROR_FORBIDDEN, 403, "forbidden"},
		{PPN_ERROR_QUOTA_EXCEEDED, 403, "quota_exceeded"},
		{PPN_ERROR_NOT_FOUND, 404, "not_found"},
		{PPN_ERROR_METHOD_NOT_ALLOWED, 405, "method_not_allowed"},
		{PPN_ERROR_CONFLICT, 409, "conflict"},
		{PPN_ERROR_PAYLOAD_TOO_LARGE, 413, "payload_too_large"},
		{PPN_ERROR_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type"},
		{PPN_ERROR_TOO_MANY_REQUESTS, 429, "too_many_requests"},
		{PPN_ERROR_NO_CAPACITY, 503, "no_capacity"},
		{PPN_ERROR_UNAVAILABLE, 503, "unavailable"},
	};
	PpnError code = PPN_ERROR_LAST;

	g_assert_cmpuint (G_N_ELEMENTS (table), ==, PPN_ERROR_LAST);
	for (guint i = 0; i < G_N_ELEMENTS (table); i++) {
		g_assert_cmpuint (ppn_error_to_http_status (table[i].code), ==, table[i].status);
		g_assert_cmpstr (ppn_error_to_string (table[i].code), ==, table[i].str);
		g_assert_true (ppn_error_from_string (table[i].str, &code));
		g_assert_cmpint (code, ==, table[i].code);
	}
	g_assert_cmpuint (ppn_error_to_http_status (PPN_ERROR_LAST), ==, 500);
	g_assert_cmpuint (ppn_error_to_http_status ((PpnError)-1), ==, 500);
	g_assert_cmpstr (ppn_error_to_string (PPN_ERROR_LAST), ==, "internal");
	code = PPN_ERROR_NOT_FOUND;
	g_assert_false (ppn_error_from_string ("Not_Found", &code));
	g_assert_false (ppn_error_from_string ("", &code));
	g_assert_false (ppn_error_from_string (NULL, &code));
	g_assert_cmpint (code, ==, PPN_ERROR_NOT_FOUND);
}

static void
test_error_convert (void)
{
	g_autoptr(GError) refused = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, "refused");
	g_autoptr(GError) other = g_error_new_literal (G_FILE_ERROR, G_FILE_ERROR_NOENT, "missing");
	g_autoptr(GError) own = g_error_new_literal (PPN_ERROR, PPN_ERROR_NOT_FOUND, "gone");

	ppn_error_convert (&refused);
	g_assert_error (refused, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_assert_cmpstr (refused->message, ==, "refused");
	ppn_error_convert (&other);
	g_assert_error (other, PPN_ERROR, PPN_ERROR_INTERNAL);
	ppn_error_convert (&own);
	g_assert_error (own, PPN_ERROR, PPN_ERROR_NOT_FOUND);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);

	g_test_add_func ("/common/config/parse-address", test_config_parse_address);
	g_test_add_func ("/common/config/parse-port-range", test_config_parse_port_range);
	g_test_add_func ("/common/config/check-keys", test_config_check_keys);
	g_test_add_func ("/common/config/get-path", test_config_get_path);
	g_test_add_func ("/common/config/get-uint", test_config_get_uint);
	g_test_add_func ("/common/json/deep-nesting", test_json_deep_nesting);
	g_test_add_func ("/common/json/refused", test_json_refused);
	g_test_add_func ("/common/json/accepted", test_json_accepted);
	g_test_add_func ("/common/json/get-int", test_json_get_int);
	g_test_add_func ("/common/json/get-int-missing", test_json_get_int_missing);
	g_test_add_func ("/common/json/check-members", test_json_check_members);
	g_test_add_func ("/common/forwards/refused", test_forwards_refused);
	g_test_add_func ("/common/forwards/round-trip", test_forwards_round_trip);
	g_test_add_func ("/common/names/validate", test_names);
	g_test_add_func ("/common/names/vm-id", test_vm_ids);
	g_test_add_func ("/common/token/new", test_tokens);
	g_test_add_func ("/common/token/hash", test_token_hash);
	g_test_add ("/common/tls/chain", TmpFixture, NULL, tmp_setup, test_tls_chain, tmp_teardown);
	g_test_add ("/common/tls/ca-is-no-peer", TmpFixture, NULL, tmp_setup, test_tls_identity_of_ca, tmp_teardown);
	g_test_add_func ("/common/tls/roles", test_tls_roles);
	g_test_add_func ("/common/error/table", test_errors);
	g_test_add_func ("/common/error/convert", test_error_convert);
	return g_test_run ();
}
