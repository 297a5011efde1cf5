# SPDX-License-Identifier: GPL-2.0-or-later
# systemd user units (contrib/systemd/), installed into the directory that
# configure chose (--with-systemduserunitdir; default from pkg-config
# systemd, none without it).
TB_UNITS_IN = \
	contrib/systemd/twinbox.service.in \
	contrib/systemd/twinbox@.service.in \
	contrib/systemd/twinbox-sync.service.in
TB_UNITS_GEN = \
	contrib/systemd/twinbox.service \
	contrib/systemd/twinbox@.service \
	contrib/systemd/twinbox-sync.service
EXTRA_DIST += $(TB_UNITS_IN) contrib/systemd/twinbox-sync.timer \
	contrib/cron.example
CLEANFILES += $(TB_UNITS_GEN)

if HAVE_SYSTEMD_USER_UNITS
systemduserunit_DATA = $(TB_UNITS_GEN) contrib/systemd/twinbox-sync.timer
endif
noinst_DATA = $(TB_UNITS_GEN)

tb_unit_edit = $(MKDIR_P) contrib/systemd && \
	sed -e 's|@bindir[@]|$(bindir)|g' $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
contrib/systemd/twinbox.service: contrib/systemd/twinbox.service.in Makefile
	$(AM_V_GEN)$(tb_unit_edit)
contrib/systemd/twinbox@.service: contrib/systemd/twinbox@.service.in Makefile
	$(AM_V_GEN)$(tb_unit_edit)
contrib/systemd/twinbox-sync.service: contrib/systemd/twinbox-sync.service.in Makefile
	$(AM_V_GEN)$(tb_unit_edit)

AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemduserunitdir='$${libdir}/systemd/user'
