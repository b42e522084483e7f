"""The mail that comes back: bounces (DSNs and the non-standard kinds), spam complaints (ARF
and the like) and auto-replies, parsed and classified without side effects, and the mailbox
readers that bring them in. Marking subscribers and deliveries is pipeline's job."""
