"""What both sides of stackgen share, importing neither: errors, the
subprocess funnel, atomic writes, templates, the install and overlay
layout, downloads and pip's reports, kernels, node and the lab build."""
