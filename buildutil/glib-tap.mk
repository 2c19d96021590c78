# Runs every GTest program under automake's TAP driver (after ostree's
# buildutil/glib-tap.mk): each test gets --tap, -k and its own temp dir.
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
LOG_COMPILER = $(top_srcdir)/buildutil/tap-test
AM_TESTS_ENVIRONMENT = \
	G_TEST_SRCDIR="$(abs_srcdir)/tests" \
	G_TEST_BUILDDIR="$(abs_builddir)/tests" \
	PPN_BUILDDIR="$(abs_builddir)" \
	PPN_SRCDIR="$(abs_srcdir)" \
	G_DEBUG=gc-friendly,fatal-warnings \
	MALLOC_CHECK_=2 \
	LC_ALL=C.UTF-8 \
	$(NULL)
EXTRA_DIST += buildutil/glib-tap.mk buildutil/tap-test
