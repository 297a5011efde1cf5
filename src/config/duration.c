/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * duration.c - durations in the configuration ("poll: 5m").
 */
#include "common.h"
#include "config/config.h"

#define DURATION_MAX (24u * 3600)

int config_parse_duration(const char *s, unsigned *seconds_r)
{
	unsigned long long x = 0;
	unsigned unit = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (unsigned)(*p - '0');
		if (x > DURATION_MAX)
			return -1;
	}
	switch (*p) {
	case '\0':
	case 's':
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	x *= unit;
	if (x == 0 || x > DURATION_MAX)
		return -1;
	*seconds_r = (unsigned)x;
	return 0;
}
