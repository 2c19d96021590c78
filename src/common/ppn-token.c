#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-token.h"

/* 32 random bytes, base64url without padding, after a fixed prefix that
 * secret scanners can recognise */
gchar *
ppn_token_new (GError **error)
{
	guint8 raw[32];
	g_autofree gchar *b64 = NULL;

	if (gnutls_rnd (GNUTLS_RND_KEY, raw, sizeof raw) != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("The system random number generator failed"));
		return NULL;
	}
	b64 = g_base64_encode (raw, sizeof raw);
	gnutls_memset (raw, 0, sizeof raw);
	for (gchar *p = b64; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	return g_strconcat (PPN_TOKEN_PREFIX, b64, NULL);
}

/* the token is 256 random bits, so one SHA-256 is enough: there is nothing
 * to brute-force that a slow hash would protect */
gboolean
ppn_token_digest (const gchar *token, guint8 digest[PPN_TOKEN_DIGEST_LEN])
{
	g_return_val_if_fail (token != NULL, FALSE);
	return gnutls_hash_fast (GNUTLS_DIG_SHA256, token, strlen (token), digest) == 0;
}

gchar *
ppn_token_hash (const gchar *token)
{
	guint8 digest[PPN_TOKEN_DIGEST_LEN];
	GString *s = g_string_new (PPN_TOKEN_HASH_PREFIX);

	if (!ppn_token_digest (token, digest)) {
		g_string_free (s, TRUE);
		return NULL;
	}
	for (guint i = 0; i < sizeof digest; i++)
		g_string_append_printf (s, "%02x", digest[i]);
	return g_string_free (s, FALSE);
}

gboolean
ppn_token_hash_parse (const gchar *hash, guint8 digest[PPN_TOKEN_DIGEST_LEN], GError **error)
{
	const gchar *hex;

	if (hash == NULL || !g_str_has_prefix (hash, PPN_TOKEN_HASH_PREFIX) ||
	    strlen (hash) != strlen (PPN_TOKEN_HASH_PREFIX) + 2 * PPN_TOKEN_DIGEST_LEN) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A token hash is \"sha256:\" followed by 64 hexadecimal digits"));
		return FALSE;
	}
	hex = hash + strlen (PPN_TOKEN_HASH_PREFIX);
	for (guint i = 0; i < PPN_TOKEN_DIGEST_LEN; i++) {
		gint hi = g_ascii_xdigit_value (hex[2 * i]);
		gint lo = g_ascii_xdigit_value (hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("A token hash is \"sha256:\" followed by 64 hexadecimal digits"));
			return FALSE;
		}
		digest[i] = (guint8)(hi << 4 | lo);
	}
	return TRUE;
}

/* constant time: every byte is looked at whatever the first difference */
gboolean
ppn_token_digest_equal (const guint8 *a, const guint8 *b)
{
	guint8 diff = 0;

	for (guint i = 0; i < PPN_TOKEN_DIGEST_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}
