# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/config/config.c src/config/config.h \
	src/config/secret.c

# The command dispatch interface; the stubs go when the real commands land.
twinbox_SOURCES += src/commands.h src/commands-stub.c
