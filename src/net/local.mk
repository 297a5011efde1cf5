# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/net/conn.c src/net/conn.h
