"""The quantised ab plane the colour prior and the bins head share."""

import numpy as np

from jaxcolor import ab_grid


def test_each_centre_lies_in_its_own_bin_in_bin_index_order():
    c = ab_grid.centres()
    assert c.shape == (ab_grid.BINS, 2) and c.dtype == np.float32
    np.testing.assert_array_equal(ab_grid.bin_index(np.floor(c[:, 0]), np.floor(c[:, 1])),
                                  np.arange(ab_grid.BINS))


def test_the_heads_classes_are_the_in_gamut_bins():
    q = ab_grid.in_gamut_centres()
    assert q.shape == (int(ab_grid.gamut_mask().sum()), 2) == (265, 2)
    np.testing.assert_array_equal(q, ab_grid.centres()[ab_grid.gamut_mask()])
    assert not q.flags.writeable  # cached and shared: nobody may edit it in place
    # Neutral gray is a class (the four bins around a = b = 0), the extremes of the grid
    # (a = b = -105: no sRGB colour is that green and that blue at once) are not.
    assert {(-5.0, -5.0), (5.0, 5.0)} <= set(map(tuple, q.tolist()))
    assert (-105.0, -105.0) not in set(map(tuple, q.tolist()))
