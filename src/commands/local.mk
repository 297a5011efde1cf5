# SPDX-License-Identifier: GPL-2.0-or-later
# The commands are part of the program itself (not of libtwinbox.a) so
# that they replace the weak stubs of commands-stub.c.
twinbox_SOURCES += \
	src/commands.h src/commands/account.c src/commands/account.h \
	src/commands/net.c src/commands/sync.c
