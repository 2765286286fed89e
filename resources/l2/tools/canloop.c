/*
 * canloop IFNAME BITRATE N: puts the CAN interface IFNAME in the controller's own loopback mode
 * at BITRATE (rtnetlink, as `ip link set IFNAME type can bitrate BITRATE loopback on` does),
 * brings it up, sends N standard frames with random IDs and payloads on a raw CAN socket and
 * checks that each comes back through the controller's receive path, in order, unchanged.
 * Prints "can_frames=N can_frames_per_s=R" and exits 0; otherwise one line saying what went
 * wrong, exit 1. Busybox has no `ip ... type can` and no can-utils: this is both.
 * Static, for L1 (the baseline with its own driver) and L2.
 */
#include <errno.h>
#include <linux/can.h>
#include <linux/can/netlink.h>
#include <linux/can/raw.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct request {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[256];
};

static void die(const char *what)
{
	printf("canloop: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}

/* Appends attribute TYPE with LEN bytes of DATA; returns it (to nest attributes in it). */
static struct rtattr *add_attr(struct request *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	if (NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_SPACE(len) > sizeof(*r))
		die("netlink request too long");
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_SPACE(len);
	return a;
}

static void end_nest(struct request *r, struct rtattr *nest)
{
	nest->rta_len = (char *)r + r->nh.nlmsg_len - (char *)nest;
}

/* Bit rate and loopback mode for interface INDEX, as one RTM_NEWLINK; waits for the ack. */
static void configure(int index, unsigned int bitrate)
{
	struct request r = {0};
	struct can_bittiming bt = {.bitrate = bitrate};
	struct can_ctrlmode cm = {.mask = CAN_CTRLMODE_LOOPBACK, .flags = CAN_CTRLMODE_LOOPBACK};
	struct rtattr *info, *data;
	char reply[4096];
	int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	ssize_t n;

	if (fd < 0)
		die("netlink socket");
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
	r.nh.nlmsg_type = RTM_NEWLINK;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r.ifi.ifi_family = AF_UNSPEC;
	r.ifi.ifi_index = index;
	info = add_attr(&r, IFLA_LINKINFO, NULL, 0);
	add_attr(&r, IFLA_INFO_KIND, "can", 4);
	data = add_attr(&r, IFLA_INFO_DATA, NULL, 0);
	add_attr(&r, IFLA_CAN_BITTIMING, &bt, sizeof(bt));
	add_attr(&r, IFLA_CAN_CTRLMODE, &cm, sizeof(cm));
	end_nest(&r, data);
	end_nest(&r, info);
	if (send(fd, &r, r.nh.nlmsg_len, 0) < 0)
		die("netlink send");
	n = recv(fd, reply, sizeof(reply), 0);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)))
		die("netlink reply");
	if (((struct nlmsghdr *)reply)->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)reply);

		if (e->error) {
			errno = -e->error;
			die("setting bitrate and loopback");
		}
	}
	close(fd);
}

static void bring_up(const char *ifname)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		die("bringing the interface up");
	close(fd);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The next frame to send: a random 11-bit ID, 1-8 random bytes. */
static void make_frame(struct can_frame *f)
{
	int i;

	memset(f, 0, sizeof(*f));
	f->can_id = rand() & CAN_SFF_MASK;
	f->can_dlc = 1 + rand() % 8;
	for (i = 0; i < f->can_dlc; i++)
		f->data[i] = rand();
}

static void receive_match(int s, const struct can_frame *want, int i)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	struct can_frame got;

	if (poll(&p, 1, 2000) != 1) {
		printf("canloop: frame %d (id 0x%x) did not come back within 2 s\n", i, want->can_id);
		exit(1);
	}
	if (read(s, &got, sizeof(got)) != sizeof(got))
		die("reading a frame");
	if (got.can_id != want->can_id || got.can_dlc != want->can_dlc ||
	    memcmp(got.data, want->data, want->can_dlc)) {
		printf("canloop: frame %d came back as id 0x%x dlc %d, sent id 0x%x dlc %d\n", i,
		       got.can_id, got.can_dlc, want->can_id, want->can_dlc);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_can addr = {.can_family = AF_CAN};
	struct can_frame f;
	int s, i, n, index;
	double t0, t1;

	if (argc != 4 || (n = atoi(argv[3])) <= 0) {
		printf("usage: canloop IFNAME BITRATE N\n");
		return 2;
	}
	index = if_nametoindex(argv[1]);
	if (!index)
		die(argv[1]);
	configure(index, strtoul(argv[2], NULL, 0));
	bring_up(argv[1]);
	s = socket(PF_CAN, SOCK_RAW, CAN_RAW);
	if (s < 0)
		die("CAN raw socket (is can_raw loaded?)");
	addr.can_ifindex = index;
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("binding the CAN socket");
	srand(time(NULL) ^ getpid());
	t0 = now();
	for (i = 0; i < n; i++) {
		make_frame(&f);
		if (write(s, &f, sizeof(f)) != sizeof(f))
			die("sending a frame");
		receive_match(s, &f, i);
	}
	t1 = now();
	printf("can_frames=%d can_frames_per_s=%.0f\n", n, n / (t1 - t0));
	return 0;
}
